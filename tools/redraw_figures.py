"""Redraw the figures (and tables) from the committed records, training nothing: each finished suite's outputs, and the
analysis figures the report places (confusion matrix, error gallery) from the analysed record, its shipped model
(results/analysis/model.pkl) and the committed error table, without rerunning cleanlab.
Usage: python tools/redraw_figures.py [--preset study] [SUITE ...]   (default: every finished suite, then the analysis)"""
import json, sys
import matplotlib; matplotlib.use('Agg')
from pathlib import Path

def analysis_figures(study):
    "confusion_best and error_gallery of the analysed model, as ftl.analysis.analyse draws them"
    import pandas as pd
    from fastai.vision.all import load_learner
    from ftl import figures
    from ftl.analysis import _batch, class_activation_maps, _full_resolution, with_commentary
    from ftl.data import load_source
    from ftl.models import get_arch
    from ftl.records import read_records
    lay = study.layout; an = lay.tables/'analysis'
    key = json.loads((an/'summary.json').read_text())['model']
    rec = next(r for f in lay.results.iterdir() if f.is_dir() for r in read_records(f) if r.key == key)
    cfg = rec.config
    title = f"{get_arch(cfg['arch']).title}, {cfg['strategy']}, augmentation {cfg['augment']}, {cfg['size']} px"
    figures.confusion(rec.test, lay.figures/'confusion_best', title)
    errors = with_commentary(pd.read_csv(an/'errors.csv', keep_default_na=False), an/'commentary.csv')
    src = load_source(cfg['dataset'], cfg['size'])
    ids = list(src.info['ids']); test_i = [ids.index(i) for i in errors.image_id]
    learn = load_learner(an/'model.pkl', cpu=True); vocab = list(learn.dls.vocab)
    x = _batch(learn, src.images[test_i])
    maps = {k: class_activation_maps(learn.model, x, [vocab.index(c) for c in errors[k]]) for k in ('true', 'pred')}
    figures.error_gallery(errors, [_full_resolution(src, i) for i in test_i], lay.figures/'error_gallery', maps,
                          title=f'Misclassified test cells by failure category ({title})')

def main(args):
    from ftl.studies import SUITES, Study
    from ftl.runner import write_outputs, complete_records
    preset = args[args.index('--preset') + 1] if '--preset' in args else 'study'
    names = [a for a in args if a not in ('--preset', preset)] or [n for n, s in SUITES.items() if s.outputs] + ['analysis']
    study = Study(preset=preset)
    for name in names:
        if name == 'analysis': analysis_figures(study)
        elif complete_records(name, study): write_outputs(SUITES[name], study)
        else: print(f'{name}: not finished, left as it is'); continue
        print('redrew', name)

if __name__ == '__main__': main(sys.argv[1:])
