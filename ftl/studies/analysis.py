"Where and why the headline model fails on the test split: confusion, per class, label issues, errors by category"
from __future__ import annotations
import json, shutil
import pandas as pd
from ..config import Config
from ..errors import UserError
from ..records import check_writable
from ..runner import register, suite_records
from ..choices import best_record
from ..analysis import RULES, with_commentary
from ..prose import num, pct, table, title, claim


def values(v, raw, frames, lay, p):
    "Where and why the analysed model fails"
    an = lay.tables/'analysis'
    if not (an/'summary.json').exists(): return
    s = json.loads((an/'summary.json').read_text())
    m = p.get('analysed')
    if m is None or m.key != s['model']: return  # the analysis of another preset's model (or of a record since deleted): not this report's
    pc = pd.read_csv(an/'per_class.csv')
    raw['worst_class'] = pc.loc[pc.f1.idxmin(), 'class']; raw['ordinal'] = s['ordinal']
    raw['rarest_class'] = min(m.n_train_per_class, key=m.n_train_per_class.get)
    li = pd.read_csv(an/'label_issues.csv')
    rates = li[li.split == 'train'].groupby('label', sort=False).label_issue.mean()
    raw['flag_rates'], raw['classes'] = rates.to_dict(), list(pc['class'])
    v['flag_rates'] = {k: pct(x, 0) for k, x in rates.items()}
    v['analysis'] = dict(model=f"{title(m.config['arch'])}, {m.config['strategy']}, {m.config['size']} px", probe=s['probe'], issues={k: num(n) for k, n in s['label_issues'].items()},
                         images={k: num(n) for k, n in s['images'].items()}, test_errors=num(s['test_errors']),
                         flagged=num(s['test_errors_flagged']), categories={k: num(n) for k, n in s['categories'].items()},
                         ordinal={k: (pct(x) if k.endswith('share') else x if isinstance(x, str) else num(x)) for k, x in s['ordinal'].items()},
                         rules=RULES, worst=raw['worst_class'], best=pc.loc[pc.f1.idxmax(), 'class'])
    v['per_class'] = table(pc, {'class': lambda x: x['class'], 'precision': lambda x: num(x.precision), 'recall': lambda x: num(x.recall),
                                'F1': lambda x: num(x.f1), 'support': lambda x: num(x.support)})
    err = with_commentary(pd.read_csv(an/'errors.csv', keep_default_na=False), an/'commentary.csv')  # a person's latest words, without rerunning the analysis
    v['errors'] = table(err, {'cell': lambda x: x.image_id, 'true': lambda x: x.true, 'predicted': lambda x: x.pred,
                              'confidence': lambda x: num(x.confidence, 2), 'category': lambda x: x.category,
                              'what a person sees': lambda x: x.commentary})

@register('analysis', kind='study', values=values, order=90)
def analysis(study: Study):
    "Where and why the headline model (else the best by validation macro-F1) fails on the test split, from its exported learner"
    from ..analysis import analyse
    lay = study.layout
    heads = [r for r in suite_records('headline', study) if r.config['dataset'] == study.dataset]
    rec = min(heads, key=lambda r: r.config['seed']) if heads else best_record(study)  # the headline's first seed, or the best cell
    out = check_writable(lay.tables/'analysis')
    model, tag = out/'model.pkl', out/'model.json'
    if not (model.exists() and tag.exists() and json.loads(tag.read_text()).get('key') == rec.key):
        exported = lay.models/f'{rec.key}.pkl'
        if not exported.exists():  # never retrain: a retrained model is not the recorded one, and a committed study's costs hours
            raise UserError(f"No exported learner of {rec.key} (the model to analyse) at {exported} or {model}: run "
                            f"--suite {rec.suite} --preset {study.preset} with the same --dataset and --results to train and export it")
        shutil.copyfile(exported, model); tag.write_text(json.dumps(dict(key=rec.key, suite=rec.suite), indent=1))
    res = analyse(model, rec, out, lay.figures)
    print(f"analysis of {rec.key}: reloaded test accuracy {res['reloaded_accuracy']:.4f} (record {rec.test['accuracy']:.4f}); "
          f"{len(res['errors'])} errors by category: {res['errors'].category.value_counts().to_dict()}")

@claim('worst-is-rarest', 'the class with the lowest test F1 is the class with the fewest training images')
def _(v): return v['raw']['worst_class'] == v['raw']['rarest_class']

@claim('likely-defective-hardest', 'likely-defective is the class with the lowest test F1 of the analysed model')
def _(v): return v['raw']['worst_class'] == 'likely-defective'

@claim('far-errors-common', 'between 40 % and 60 % of the analysed model\'s test errors skip a defect level ("about half")')
def _(v): return 0.4 <= v['raw']['ordinal']['far_share'] <= 0.6

@claim('middle-levels-suspect', 'cleanlab flags the training labels of each middle level at a higher rate than those of either end level')
def _(v):
    r, c = v['raw']['flag_rates'], v['raw']['classes']
    return min(r[k] for k in c[1:-1]) > max(r[c[0]], r[c[-1]])
