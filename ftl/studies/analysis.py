"Where and why the headline model fails on the test split: confusion, per class, label issues, errors by category"
from __future__ import annotations
import json, shutil
import torch
import pandas as pd
from ..errors import UserError
from ..records import check_writable
from ..runner import Study, register, suite_records
from ..choices import best_record
from ..config import Config
from ..train import export, probe_as_model, probe_head_file
from ..analysis import RULES, with_commentary
from ..prose import num, pct, table, title, claim, p_words, ALPHA

PROBE = dict(size=224)  # the label-issue probe's input size: its backbone's pretraining resolution
SETTINGS = {'tiny': dict(size=28)}  # a first look in minutes: the smallest size ViT-S/14 takes above 16 px

def settings(preset: str) -> dict: return {**PROBE, **SETTINGS.get(preset, {})}

def values(v, raw, frames, lay, p):
    "Where and why the analysed model fails: per class, suspect labels, the errors a person looked at"
    an = lay.tables/'analysis'
    if not (an/'summary.json').exists(): return
    s = json.loads((an/'summary.json').read_text())
    m = p.get('analysed')
    if m is None or m.key != s['model']: return  # the analysis of another preset's model (or of a record since deleted): not this report's
    pc = pd.read_csv(an/'per_class.csv')
    raw['worst_class'] = pc.loc[pc.f1.idxmin(), 'class']; raw['ordinal'] = s['ordinal']
    raw['rarest_class'] = min(m.n_train_per_class, key=m.n_train_per_class.get)
    li = pd.read_csv(an/'label_issues.csv')
    flags = li[li.split == 'train'].groupby('label', sort=False).label_issue.agg(['sum', 'count'])
    raw['flags'], raw['classes'] = {k: (int(r['sum']), int(r['count'])) for k, r in flags.iterrows()}, list(pc['class'])
    v['flag_rates'] = {k: pct(a/n, 0) for k, (a, n) in raw['flags'].items()}
    err = with_commentary(pd.read_csv(an/'errors.csv', keep_default_na=False), an/'commentary.csv')  # a person's latest words, without rerunning the analysis
    mc = pd.read_csv(an/'most_confused.csv')  # every test error, as fastai's ClassificationInterpretation counts them
    top = mc[mc['count'] == mc['count'].max()] if len(mc) else mc
    v['analysis'] = dict(model=f"{title(m.config['arch'])}, {m.config['strategy']}, {m.config['size']} px", probe=s['probe'], issues={k: num(n) for k, n in s['label_issues'].items()},
                         images={k: num(n) for k, n in s['images'].items()}, test_errors=num(s['test_errors']),
                         flagged=num(s['test_errors_flagged']), categories={k: num(n) for k, n in s['categories'].items()},
                         ordinal={k: (pct(x) if k.endswith('share') else x if isinstance(x, str) else num(x)) for k, x in s['ordinal'].items()},
                         rules=RULES, worst=raw['worst_class'], best=pc.loc[pc.f1.idxmax(), 'class'], rarest=raw['rarest_class'],
                         most_flagged=max(raw['flags'], key=lambda k: raw['flags'][k][0]/raw['flags'][k][1]),
                         shown=num(len(err)), commented=num(int((err.commentary != '').sum())),
                         top_pairs=dict(pairs=[f'{t} read as {q}' for t, q in zip(top.true, top.predicted)],
                                        n=num(int(top['count'].iloc[0]))) if len(top) else None)  # every pair tied for the most
    c = m.config
    v['analysis'].update(seed=num(c['seed']), augment=c['augment'], epochs=num(len(m.history)), restored=num(m.best_epoch),
                         precision=m.hyperparams['precision'], accuracy=num(m.test['accuracy']), f1=num(m.test['macro_f1']),
                         suite=m.suite or '')
    if 'inference' in s: v['analysis']['inference'] = {k: num(x) if isinstance(x, (int, float)) else x for k, x in s['inference'].items()}
    v['per_class'] = table(pc, {'class': lambda x: x['class'], 'precision': lambda x: num(x.precision), 'recall': lambda x: num(x.recall),
                                'F1': lambda x: num(x.f1), 'support': lambda x: num(x.support)})
    v['errors'] = table(err, {'image': lambda x: x.image_id, 'true': lambda x: x.true, 'predicted': lambda x: x.pred,
                              'confidence': lambda x: num(x.confidence, 2), 'category': lambda x: x.category,
                              'what a person sees': lambda x: x.commentary})

@register('analysis', kind='study', values=values, title='Where and why the model fails', order=90)
def analysis(study: Study):
    "Where and why the headline model (else the best by validation macro-F1) fails on the test split, from its exported learner"
    from ..analysis import analyse
    lay = study.layout
    heads = [r for r in suite_records('headline', study) if r.config['dataset'] == study.dataset]
    rec = min(heads, key=lambda r: r.config['seed']) if heads else best_record(study)  # the headline's first seed, or the best cell
    out = check_writable(lay.tables/'analysis')
    model, tag = out/'model.pkl', out/'model.json'
    if not (model.exists() and tag.exists() and json.loads(tag.read_text()).get('key') == rec.key):
        exported, head = lay.models/f'{rec.key}.pkl', probe_head_file(lay.models, rec.key)
        if not exported.exists() and head.exists():  # a cached-feature probe: its backbone and its trained head, made whole
            export(probe_as_model(Config(**rec.config), torch.load(head, weights_only=True)), exported)
        if not exported.exists():  # never retrain: a retrained model is not the recorded one, and a committed study's costs hours
            raise UserError(f"No exported learner of {rec.key} (the model to analyse) at {exported} or {model}: run "
                            f"--suite {rec.suite} --preset {study.preset} with the same --dataset and --results to train and export it")
        shutil.copyfile(exported, model); tag.write_text(json.dumps(dict(key=rec.key, suite=rec.suite), indent=1))
    res = analyse(model, rec, out, lay.figures, probe_size=settings(study.preset)['size'])
    i = res['inference']
    print(f"analysis of {rec.key}: reloaded in fp32, test accuracy {i['accuracy']:.4f} (its record, {i['trained']}: {i['record_accuracy']:.4f}; "
          f"{i['moved']} test predictions changed); "
          f"{len(res['errors'])} errors by category: {res['errors'].category.value_counts().to_dict()}")

@claim('worst-is-rarest', 'the class with the lowest test F1 is the class with the fewest training images', 'a fact of the counts')
def _(r): return r['worst_class'] == r['rarest_class']

@claim('middle-classes-flagged-more', "of ordered classes, cleanlab flags each middle class's training labels at a higher rate than either end's, and the pooled rates differ by Fisher's exact test (p < 0.05)", "Fisher's exact test")
def _(r):
    from scipy.stats import fisher_exact
    if not r['ordered'] or len(r['classes']) < 3: raise KeyError('classes not ordered')
    f, c = r['flags'], r['classes']
    rate = lambda k: f[k][0]/f[k][1]
    mid, ends = [f[k] for k in c[1:-1]], [f[c[0]], f[c[-1]]]
    pool = lambda g: [sum(a for a, _ in g), sum(n - a for a, n in g)]
    p = fisher_exact([pool(mid), pool(ends)]).pvalue
    return min(rate(k) for k in c[1:-1]) > max(rate(c[0]), rate(c[-1])) and p < ALPHA, f"Fisher's exact test {p_words(p)}"
