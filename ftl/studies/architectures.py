"Which pretrained backbone: every architecture of the active set fine-tuned alike; accuracy and cost in one table"
from __future__ import annotations
import pandas as pd
from ..models import OFFLINE, ONLINE, get_arch
from ..config import grid_runs
from ..runner import Study, register
from ..benchmark import cost_table
from ..prose import num, pm, table, title, claim
from .. import tables, figures


def _title(r) -> str:
    "A cell's panel title, in words"
    c = r.config
    return f"{get_arch(c['arch']).title}, {c['strategy']}, aug {c['augment']}"

def values(v, raw, frames, lay, p):
    "Which backbone: accuracy and cost in one table"
    a = frames.get('architectures', pd.DataFrame())
    if not len(a): return
    t = tables.architecture_table(a, cost_table(lay.results/'benchmark'))
    lat = sorted((c for c in t.columns if c.startswith('cpu_ms_')), key=lambda c: int(c.split('_')[2][:-2]))
    cols = {'architecture': lambda r: title(r.arch), 'pretraining': lambda r: r.pretraining.split(' (')[0],
            'test accuracy': lambda r: pm(r.test_accuracy_mean, r.test_accuracy_std),
            'test macro-F1': lambda r: pm(r.test_macro_f1_mean, r.test_macro_f1_std),
            'valid macro-F1': lambda r: pm(r.valid_macro_f1_mean, r.valid_macro_f1_std),
            'params (M)': lambda r: num(r.params_M, 2), 'MB': lambda r: num(r.size_mb, 1)}
    cols.update({f"ms, {c.split('_')[2][:-2]} px": (lambda r, c=c: num(r[c], 1)) for c in lat})
    v['architectures'] = table(t, cols)
    runs = grid_runs(p['name'])
    fits = tables.grid_candidates(a, p.get('grid_hours'), runs)  # the rule suites.best_arch applies
    if p.get('grid_hours'):  # the grid suites' budget on this CPU
        hours = tables.grid_hours(a, runs)
        v['grid'] = dict(limit=num(p['grid_hours']), runs=num(runs),
                         hours=[f'{title(k)} {x:.1f} h' for k, x in hours.items()],
                         over=[title(k) for k, x in hours.items() if x > p['grid_hours']])
    best, top = t.set_index('arch').loc[tables.one_se_choice(fits)], t.loc[t.valid_macro_f1_mean.idxmax()]
    raw['arch_valid'] = {r.arch: dict(mean=r.valid_macro_f1_mean, std=r.valid_macro_f1_std, params=r.params_M,
                                      pretraining=r.pretraining) for _, r in t.iterrows()}
    cnn = t[t.pretraining.str.contains('ImageNet')]
    if len(cnn): v['smaller_cnn'] = title(cnn.loc[cnn.params_M.idxmin(), 'arch'])
    raw.update(arch_valid_f1=list(t.valid_macro_f1_mean), best_arch=top.arch, chosen_arch=best.name, largest_arch=t.loc[t.params_M.idxmax(), 'arch'] if 'params_M' in t else None)
    if lat: raw['latency'], raw['params'] = dict(zip(t.arch, t[lat[-1]])), dict(zip(t.arch, t.params_M))  # the largest size timed
    v['best_arch'] = dict(name=title(top.arch), valid_f1=num(top.valid_macro_f1_mean), test_f1=num(top.test_macro_f1_mean),
                          chosen=title(best.name), chosen_valid_f1=num(best.valid_macro_f1_mean), same=best.name == top.arch)
    if lat:  # what the best backbone costs beside the grids' one, at each size timed
        tb, tc = t.set_index('arch').loc[top.arch], best
        v['cost'] = dict(params=f'{tb.params_M/tc.params_M:.0f}', px=[c.split('_')[2][:-2] + ' px' for c in lat],
                         best_ms=[num(tb[c], 1) for c in lat], chosen_ms=[num(tc[c], 1) for c in lat])

def _architectures_outputs(study, df):
    lay = study.layout
    tables.write_table(tables.architecture_table(df, cost_table(lay.results/'benchmark')), lay.tables/'architectures_table')
    figures.training_curves(sorted(df.record, key=lambda r: (r.config['arch'], r.config['seed'])), _title,
                            lay.figures/'curves_architectures', 'Architectures: fine-tune, 100 % data', ncols=3)

@register('architectures', export=True, outputs=_architectures_outputs, values=values, order=10)
def architectures(study: Study) -> list:
    "Which pretrained backbone: every architecture of the active set (offline packaged weights, or --online the hub), fine-tune"
    archs = [study.arch] if study.arch else [a.name for a in (ONLINE if study.online else OFFLINE)]
    return [study.config(arch=a, seed=s) for a in archs for s in study.seeds]

@claim('largest-is-best', 'the backbone with the most parameters has the best mean validation macro-F1')
def _(v): return v['raw']['largest_arch'] == v['raw']['best_arch']

@claim('best-beyond-seed-noise', 'the best backbone leads the next by more than the standard deviation over seeds of either, on validation macro-F1')
def _(v):
    a = sorted(v['raw']['arch_valid'].values(), key=lambda x: -x['mean'])
    return a[0]['mean'] - a[1]['mean'] > max(a[0]['std'], a[1]['std'])

@claim('smaller-cnn-not-worse', 'of the two ImageNet-supervised CNNs, the one with fewer parameters has the higher mean validation macro-F1')
def _(v):
    cnn = [x for x in v['raw']['arch_valid'].values() if 'ImageNet' in x['pretraining']]
    return min(cnn, key=lambda x: x['params'])['mean'] == max(x['mean'] for x in cnn)

@claim('cnns-faster', 'at batch 1 on the CPU, at the largest size timed, the ViT takes longer per image than each CNN, and has more parameters')
def _(v):
    lat, n, vit = v['raw']['latency'], v['raw']['params'], 'vit_small_dinov2'
    return all(lat[vit] > lat[a] and n[vit] > n[a] for a in lat if a != vit)
