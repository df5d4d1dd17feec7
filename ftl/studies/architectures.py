"Which pretrained backbone: every architecture of the active set fine-tuned alike; accuracy and cost in one table"
from __future__ import annotations
import numpy as np, pandas as pd
from ..models import OFFLINE, ONLINE, get_arch
from ..config import grid_runs
from ..runner import Study, register
from ..benchmark import cost_table
from ..prose import num, pm, table, title, claim, welch, p_words, ALPHA
from .. import tables, figures


def _title(r) -> str:
    "A cell's panel title, in words: its backbone (the suite's strategy and augmentation are the figure's title)"
    return get_arch(r.config['arch']).title

def values(v, raw, frames, lay, p):
    "Which backbone: accuracy and cost in one table; the best against the runner-up, and backbones of one pretraining by size"
    a = frames.get('architectures', pd.DataFrame())
    if not len(a): return
    v['arch_restored'] = num(int(a.record.map(figures.restored_early).sum()))  # runs whose curves mark a restored epoch
    t = tables.architecture_table(a, cost_table(lay.results/'benchmark'))
    if 'params_M' not in t: t['params_M'] = t.arch.map(a.groupby('arch').params.first()/1e6)  # not benchmarked: the records' count
    px = lambda c: c.split('_')[2][:-2]  # 'cpu_ms_128px' -> '128'
    lat, gpu = (sorted((c for c in t.columns if c.startswith(f'{d}_ms_') and c.endswith('px')), key=lambda c: int(px(c))) for d in ('cpu', 'gpu'))
    cols = {'architecture': lambda r: title(r.arch), 'pretraining': lambda r: r.pretraining.split(' (')[0],
            'test accuracy': lambda r: pm(r.test_accuracy_mean, r.test_accuracy_std),
            'test macro-F1': lambda r: pm(r.test_macro_f1_mean, r.test_macro_f1_std),
            'valid macro-F1': lambda r: pm(r.valid_macro_f1_mean, r.valid_macro_f1_std),
            'params (M)': lambda r: num(r.params_M, 2), **({'MB': lambda r: num(r.size_mb, 1)} if 'size_mb' in t else {})}
    cols.update({f"{c[:3].upper()} ms, {px(c)} px": (lambda r, c=c: num(r[c], 1)) for c in lat + gpu})
    if not gpu: cols['GPU ms'] = lambda r: 'not measured: no GPU'  # `--suite benchmark` on a CUDA machine fills it
    v['architectures'] = table(t, cols)
    runs = grid_runs(p['name'])
    fits = tables.grid_candidates(a, p.get('grid_hours'), runs)  # the rule choices.best_arch applies
    if p.get('grid_hours'):  # the grid suites' budget on this CPU
        hours = tables.grid_hours(a, runs)
        v['grid'] = dict(limit=num(p['grid_hours']), runs=num(runs),
                         hours=[f'{title(k)} {x:.1f} h' for k, x in hours.items()],
                         over=[title(k) for k, x in hours.items() if x > p['grid_hours']])
    t = t.sort_values('valid_macro_f1_mean', ascending=False, kind='stable')
    best, top = t.set_index('arch').loc[tables.one_se_choice(fits)], t.iloc[0]
    raw['arch_valid'] = {r.arch: dict(mean=r.valid_macro_f1_mean, params=r.params_M, pretraining=r.pretraining,
                                      seeds=list(a[a.arch == r.arch].valid_macro_f1)) for _, r in t.iterrows()}
    raw['arch_ranked'] = list(t.arch)
    if lat: raw['latency'] = dict(zip(t.arch, t[lat[-1]]))  # the largest size timed
    v['best_arch'] = dict(name=title(top.arch), valid_f1=num(top.valid_macro_f1_mean), test_f1=num(top.test_macro_f1_mean),
                          pretraining=top.pretraining, n=len(t), chosen=title(best.name), chosen_valid_f1=num(best.valid_macro_f1_mean),
                          same=best.name == top.arch, seeds=num(int(t.seeds.max())), tested=bool(t.seeds.min() > 1))
    if len(t) > 1: v['best_arch'].update(second=title(t.iloc[1].arch), second_valid_f1=num(t.iloc[1].valid_macro_f1_mean))
    groups = t.groupby('pretraining').arch.agg(list)
    if (groups.map(len) > 1).any():  # backbones that share a pretraining: the smallest against the largest
        pre = groups[groups.map(len) == groups.map(len).max()].index[0]
        g = t[t.pretraining == pre].sort_values('params_M')
        small, large = g.iloc[0], g.iloc[-1]
        raw['same_pretraining'] = dict(small=small.arch, large=large.arch)
        v['same_pretraining'] = dict(pretraining=pre, n=num(len(g)), small=title(small.arch), large=title(large.arch),
                                     small_params=num(small.params_M, 1), large_params=num(large.params_M, 1),
                                     ratio=f'{large.params_M/small.params_M:.1f}')
    if lat:  # what the best backbone costs beside the grids' one, at each size timed
        tb, tc = t.set_index('arch').loc[top.arch], best
        v['cost'] = dict(params=f'{tb.params_M/tc.params_M:.0f}', px=[px(c) + ' px' for c in lat],
                         best_ms=[num(tb[c], 1) for c in lat], chosen_ms=[num(tc[c], 1) for c in lat])

def _architectures_outputs(study, df):
    lay = study.layout
    tables.write_table(tables.architecture_table(df, cost_table(lay.results/'benchmark')), lay.tables/'architectures_table')
    figures.training_curves(sorted(df.record, key=lambda r: (r.config['arch'], r.config['seed'])), _title,
                            lay.figures/'curves_architectures', 'Architectures: fine-tune, 100 % data', ncols=3)

@register('architectures', export=True, outputs=_architectures_outputs, values=values, title='Which backbone', order=10)
def architectures(study: Study) -> list:
    "Which pretrained backbone: every architecture of the active set (offline packaged weights, or --online the hub), fine-tune"
    archs = [study.arch] if study.arch else [a.name for a in (ONLINE if study.online else OFFLINE)]
    return [study.config(arch=a, seed=s) for a in archs for s in study.seeds]

def _welch_words(a, b) -> tuple:
    "Welch's t-test of two backbones' validation macro-F1 over seeds: (difference, p, evidence in words)"
    d, p = welch(a['seeds'], b['seeds'])
    return d, p, (f"Welch t-test {p_words(p)}, {len(a['seeds'])} and {len(b['seeds'])} seeds" if np.isfinite(p) else 'one seed each: no test')

@claim('best-backbone-separated', 'the backbone with the best mean validation macro-F1 beats the runner-up by a Welch t-test over seeds (p < 0.05)', 'Welch t-test')
def _(r):
    a, ranked = r['arch_valid'], r['arch_ranked']
    if len(ranked) < 2: raise KeyError('one backbone: no runner-up')
    best, second = a[ranked[0]], a[ranked[1]]
    d, p, words = _welch_words(best, second)
    return d > 0 and p < ALPHA, words

@claim('largest-is-best', 'the backbone with the most parameters has the best mean validation macro-F1')
def _(r): a = r['arch_valid']; return max(a, key=lambda k: a[k]['params']) == r['arch_ranked'][0]

@claim('best-is-slowest', 'the backbone with the best mean validation macro-F1 is the slowest at batch 1 on the CPU, at the largest size timed', 'one latency per backbone (a median of timed passes)')
def _(r): return max(r['latency'], key=r['latency'].get) == r['arch_ranked'][0]

@claim('best-pretrained-alone', 'no other backbone shares the pretraining of the best one', 'a fact of the registry')
def _(r): a = r['arch_valid']; best = r['arch_ranked'][0]; return all(a[k]['pretraining'] != a[best]['pretraining'] for k in a if k != best)

@claim('same-pretraining-smaller-ahead', 'of the backbones sharing a pretraining, the smallest beats the largest on validation macro-F1 (Welch p < 0.05)', 'Welch t-test')
def _(r):
    a, s = r['arch_valid'], r['same_pretraining']; d, p, words = _welch_words(a[s['small']], a[s['large']])
    return d > 0 and p < ALPHA, words

@claim('same-pretraining-larger-ahead', 'of the backbones sharing a pretraining, the largest beats the smallest on validation macro-F1 (Welch p < 0.05)', 'Welch t-test')
def _(r):
    a, s = r['arch_valid'], r['same_pretraining']; d, p, words = _welch_words(a[s['large']], a[s['small']])
    return d > 0 and p < ALPHA, words
