"""The study-wide values of the report's method and appendix, read from every suite's records: the backbones and the
machine, seeds per suite, the hyperparameters of every experiment, what bfloat16 costs, and the budget"""
from __future__ import annotations
import json
import pandas as pd
from .records import read_records, records_frame, cell_key, CONFIG_ADDED
from .plan import PLAN_FILE
from .prose import num, pct, table, title, lift_constant, claim, interval
from . import tables

__all__ = ['backbones', 'seeds', 'hyper', 'precision', 'budget', 'SECTIONS']

HYPER_NAMES = dict(wd='weight decay', sqr_mom='β2', mom='β1', eps='ε')

def optimizer_words(opt: str, hypers: dict) -> str:
    "An optimizer and its settings in words"
    return f"{opt} (" + ', '.join(f'{HYPER_NAMES.get(k, k)} {v:.3g}' for k, v in hypers.items()) + ')'

def _every(frames) -> pd.DataFrame:
    "Every suite's records in one frame (a run two suites share appears twice)"
    fs = [f for f in frames.values() if len(f)]
    return pd.concat(fs, ignore_index=True) if fs else pd.DataFrame()

def backbones(v, raw, frames, lay, p):
    "The backbones the records trained (name, pretraining, whether their weights ship in a package) and the machine they ran on"
    every = _every(frames)
    if not len(every): return
    archs = {r.arch['name']: r.arch for r in every.record}
    v['backbones'] = [dict(name=title(k), pretraining=a['pretraining'], packaged=a['weights'].startswith('package:')) for k, a in archs.items()]
    v['offline'] = all(b['packaged'] for b in v['backbones'])
    env = [r.env for r in every.record]
    gpus = sorted({e.get('cuda') or e['device'] for e in env if e['device'] != 'cpu'})
    v['machine'] = ' and '.join(gpus) if gpus else f"{max(e.get('threads', 1) for e in env)} CPU threads"
    v['gpu'] = bool(gpus)

def seeds(v, raw, frames, lay, p):
    "How many seeds each suite's configurations have, in words (suites with the same number grouped)"
    n = {}
    for name, f in frames.items():
        if len(f): n.setdefault(int(f.groupby(f.record.map(cell_key)).seed.nunique().max()), []).append(name)  # fields added since a record was written: their defaults
    if n: v['seeds'] = '; '.join(f"{k} seed{'s' if k > 1 else ''} in {', '.join(names)}" for k, names in sorted(n.items(), reverse=True))

def hyper(v, raw, frames, lay, p):
    "The hyperparameters of every experiment, with the epoch each restored and whether it stopped early"
    every = _every(frames)
    if not len(every): return
    h = tables.merge_fractions(tables.hyperparameter_table(every))
    main = h.dataset.mode()[0]  # the study's dataset; a row on another (a derived task) says which
    listed = lambda xs, f: '/'.join(map(f, xs[:1] if len(set(xs)) == 1 else xs))  # a merged row's fractions or epochs
    hyper = table(h, {'architecture': lambda x: title(x.arch), 'strategy': lambda x: x.strategy + ('' if x.init == 'pretrained' else f', {x.init}'),
                      'data': lambda x: listed(x.fraction, lambda f: f'{100*f:.0f}') + ' %' + ('' if x.dataset == main else f", {x.dataset.removeprefix(main + '-')}"),
                      'px': lambda x: num(x['size']), 'epochs': lambda x: listed(x.epochs, num),
                      'schedule per stage': lambda x: x.schedule.replace('stage ', 'S'),
                      'early stopping': lambda x: x.early_stopping, 'epoch restored (monitor: epoch of ran)': lambda x: x.restored,
                      'augmentation, loss, class weights, precision': lambda x: ', '.join([x.augmentation, *([f'{x.loss} loss'] if x.loss != CONFIG_ADDED['loss'] else []),
                                                                                   *(['class-weighted'] if x.class_weights == 'yes' else []), x.precision]),
                      'batch': lambda x: num(x.batch_size), 'seeds': lambda x: x.seeds})
    v['hyper'], v['hyper_same'] = lift_constant(hyper)
    v['hyper_merged'] = bool((h.fraction.map(len) > 1).any())
    norms = {}  # the statistics each backbone was pretrained with (timm's pretrained config), as the records applied them
    for r in every.record: norms.setdefault(json.dumps(r.normalization), set()).add(title(r.config['arch']))
    trio = lambda xs: num(xs[0]) if len(set(xs)) == 1 else ' / '.join(num(x) for x in xs)
    v['normalization'] = [f"mean {trio(n['mean'])}, standard deviation {trio(n['std'])} for {' and '.join(sorted(archs))}"
                          for n, archs in ((json.loads(k), a) for k, a in norms.items())]
    r0 = every.record.iloc[0].hyperparams
    v['hyper_common'] = dict(optimizer=optimizer_words(r0['optimizer'], r0['opt_hypers']), batch=num(h.batch_size.iloc[0]))

def precision(v, raw, frames, lay, p):
    "What bfloat16 autocast costs in accuracy and saves in time: the architecture cells trained both ways, seed by seed"
    folder = lay.results/'architectures'
    if not p.get('bf16_families') or not folder.exists(): return
    recs = [r for r in read_records(folder) if not r.reused_from]
    pairs = tables.precision_pairs(records_frame(recs))
    if not len(pairs) or 'bf16' not in pairs.columns.get_level_values(1): return
    twins = set(pairs.index.get_level_values('twin'))
    raw['precision_records'] = [r for r in recs if r.train_path == 'end-to-end' and cell_key(r, without=('precision',)) in twins]  # the budget counts them
    other = [c for c in pairs.columns.get_level_values(1).unique() if c != 'bf16'][0]  # the precision compared against
    d, lo, hi = tables.paired_diff(pairs[('valid_macro_f1', 'bf16')], pairs[('valid_macro_f1', other)])
    dt, lot, hit = tables.paired_diff(pairs[('test_macro_f1', 'bf16')], pairs[('test_macro_f1', other)])
    speed = pairs[('train_seconds', other)].sum()/pairs[('train_seconds', 'bf16')].sum()
    v['bf16'] = dict(arch=title(pairs.index.get_level_values('arch')[0]), px=num(pairs.index.get_level_values('size')[0]),
                     seeds=num(len(pairs)), speedup=f'{speed:.1f}', other=other,
                     valid_diff=interval(d, lo, hi), test_diff=interval(dt, lot, hit))
    raw['bf16'] = dict(valid_ci=(d, lo, hi), test_ci=(dt, lot, hit), speedup=speed)

def budget(v, raw, frames, lay, p):
    "What the study's runs cost: training (and feature) minutes per suite, each run counted once, as the records measured them"
    seen, minutes = set(), {}
    runs = [(name, r) for name, f in frames.items() for r in (f.record if len(f) else [])]
    for name, r in runs + [('precision check', r) for r in raw.get('precision_records', [])]:
        if r.key in seen or r.reused_from: continue
        seen.add(r.key); minutes[name] = minutes.get(name, 0) + (r.train_seconds + (r.feature_seconds or 0))/60
    if not minutes: return
    raw['budget_hours'] = sum(minutes.values())/60
    v['budget'] = dict(hours=num(raw['budget_hours'], 1), runs=num(len(seen)),
                       per_suite=[f'{n} {m:.1f} min' if m < 10 else f'{n} {m:.0f} min' for n, m in minutes.items()])
    if (f := lay.results/PLAN_FILE).exists():  # the runs planned before they ran: estimate against what they took
        plan = pd.read_csv(f).set_index('key').planned_min
        took = {r.key: r.train_seconds/60 for _, r in runs if r.key in plan.index and not r.reused_from}
        if took:
            raw['plan_vs_actual'] = (float(plan[list(took)].sum()), sum(took.values()))
            v['budget']['planned'] = dict(runs=num(len(took)), planned=num(raw['plan_vs_actual'][0]/60, 1), actual=num(raw['plan_vs_actual'][1]/60, 1))

def decisions(v, raw, frames, lay, p):
    """The decisions a person took during the study and recorded in the results folder (`decisions.csv`: when, what, why),
    printed as written: the report cannot know when a rule was set, only that it was"""
    f = lay.results/'decisions.csv'
    if f.exists(): v['decisions'] = pd.read_csv(f, dtype=str).fillna('').to_dict('records')

SECTIONS = (backbones, seeds, hyper, precision, budget, decisions)  # in the order the report gathers them, after the suites

@claim('bf16-within-noise', 'bf16 trained faster, and the paired 95 % intervals of its validation and test macro-F1 difference to the other precision contain zero', 'paired 95 % t-interval')
def _(r):
    b = r['bf16']
    return b['speedup'] > 1 and all(lo <= 0 <= hi for _, lo, hi in (b['valid_ci'], b['test_ci'])), f"validation {interval(*b['valid_ci'])}, test {interval(*b['test_ci'])}"
