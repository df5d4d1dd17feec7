"How much labelled data: fine-tuned, a frozen probe and from scratch on nested stratified fractions of the training split"
from __future__ import annotations
import json
from dataclasses import replace
import numpy as np, pandas as pd
from ..models import get_arch
from ..evaluate import majority_baseline
from ..runner import Study, register
from ..choices import best_arch
from ..prose import num, pct, pm, table, title, claim
from .. import tables, figures


FRACTIONS = (1.0, 0.5, 0.25, 0.1, 0.05)

def values(v, raw, frames, lay, p):
    "How much labelled data: pretrained vs scratch, the crossing, the majority baseline"
    e = frames.get('data-efficiency', pd.DataFrame())
    if not len(e): return
    t = tables.efficiency_table(e)
    v['efficiency'] = table(t, {'fraction': lambda r: pct(r.fraction, 0), 'init': lambda r: r.init, 'images': lambda r: num(r.n_train),
                                'smallest class': lambda r: num(r.n_min_class), 'epochs': lambda r: num(r.epochs),
                                'test accuracy': lambda r: pm(r.test_accuracy_mean, r.test_accuracy_std),
                                'test macro-F1': lambda r: pm(r.test_macro_f1_mean, r.test_macro_f1_std),
                                'macro-F1 gain [95 % CI] over': lambda r: '' if np.isnan(r.test_macro_f1_diff) else
                                f'{r.test_macro_f1_diff:+.3f} [{r.test_macro_f1_diff_lo95:+.3f}, {r.test_macro_f1_diff_hi95:+.3f}] {r.reference}'})
    pt = t[t.init == 'fine-tuned'].set_index('fraction')
    fz = t[t.init == 'frozen probe'].set_index('fraction')
    if len(fz):  # what freezing costs against fine-tuning, per fraction: enough where the interval reaches zero
        raw['freezing_cost'] = {f: (r.test_macro_f1_diff, r.test_macro_f1_diff_lo95, r.test_macro_f1_diff_hi95) for f, r in fz.iterrows()}
        v['freezing'] = dict(clear=[pct(f, 0) for f, r in fz.iterrows() if r.test_macro_f1_diff_hi95 < 0],
                             cost_full=f"{fz.loc[fz.index.max(), 'test_macro_f1_diff']:+.3f}", cost_min=f"{fz.loc[fz.index.min(), 'test_macro_f1_diff']:+.3f}")
    raw['pretraining_gain'] = pt.test_macro_f1_diff.to_dict()
    zero = [pct(f, 0) for f, r in pt.iterrows() if r.test_macro_f1_diff_lo95 <= 0 <= r.test_macro_f1_diff_hi95]
    arms = tables.efficiency_arms(e).pivot_table(index=['fraction', 'seed'], columns='init', values='test_macro_f1')
    ahead = (arms['fine-tuned'] > arms['scratch']).dropna() if {'fine-tuned', 'scratch'} <= set(arms.columns) else pd.Series(dtype=bool)
    v['efficiency_zero'] = zero
    v['pretraining'] = dict(ahead=num(int(ahead.sum())), pairs=num(len(ahead)), lo=f'{pt.test_macro_f1_diff.min():+.3f}',
                            hi=f'{pt.test_macro_f1_diff.max():+.3f}', full=f'{pt.test_macro_f1_diff.loc[pt.index.max()]:+.3f}',
                            smallest=f'{pt.test_macro_f1_diff.loc[pt.index.min()]:+.3f}', smallest_frac=pct(pt.index.min(), 0),
                            smallest_images=num(pt.n_train.loc[pt.index.min()]), smallest_class=num(pt.n_min_class.loc[pt.index.min()]))
    cross = {m: tables.crossing(e, m) for m in ('test_accuracy', 'test_macro_f1')}
    raw['crossing_f1'], raw['crossing_acc'] = cross['test_macro_f1']['fraction'], cross['test_accuracy']['fraction']
    v['crossing'] = {m: dict(fraction=pct(c['fraction'], 0), images=num(round(c['fraction']*pt.n_train.max())), lo=pct(c['lo95'], 0),
                             hi=pct(c['hi95'], 0), level=num(c['level'])) for m, c in cross.items()}
    raw['baseline'] = majority_baseline(e.record.iloc[0].test)
    v['baseline'] = {k: num(x) for k, x in raw['baseline'].items()}
    v['efficiency_arch'], v['efficiency_seeds'] = title(e.arch.iloc[0]), num(int(t.seeds.max()))

def budget_factor(fraction, min_share=0.25) -> float:
    "Epoch multiplier giving a run on `fraction` of the data at least `min_share` of the full-data optimizer steps"
    return max(1.0, min_share/fraction)

DATA_EFFICIENCY = dict(seeds=(0, 1, 2), scratch_lr=1e-2, scratch_epochs_factor=1.5)
SETTINGS = {'tiny': dict(seeds=(0,))}  # per preset: a first look trains one seed per cell

def _data_efficiency_outputs(study, df):
    lay = study.layout
    tab = tables.efficiency_table(df)
    tables.write_table(tab, lay.tables/'data_efficiency_table')
    cross = {m: tables.crossing(df, m) for m in ('test_accuracy', 'test_macro_f1')}
    cross['majority_baseline'] = majority_baseline(df.record.iloc[0].test)  # the same fixed test split for every run
    (lay.tables/'data_efficiency_crossing.json').write_text(json.dumps(cross, indent=1))
    figures.efficiency_plot(tab, path=lay.figures/'data_efficiency', baseline=cross['majority_baseline'],
                            title=f"{get_arch(df.arch.iloc[0]).title} on {df.dataset.iloc[0]}: fine-tuned, frozen probe and from scratch")

@register('data-efficiency', outputs=_data_efficiency_outputs, values=values, order=60)
def data_efficiency(study: Study) -> list:
    """How much labelled data: pretrained (fine-tune), a frozen-feature probe and from scratch at nested stratified fractions, 3 seeds.
    Small fractions get more epochs so that every run has at least a quarter of the full-data steps. Every arm trains its
    whole one-cycle budget (patience = epochs) and restores its epoch by the preset's rule; scratch has its own lr and budget"""
    arch = study.arch or best_arch(study)
    base = study.config(arch=arch)
    def arms(f):
        pt, sc = (int(round(base.epochs*k*budget_factor(f))) for k in (1, DATA_EFFICIENCY['scratch_epochs_factor']))
        return [dict(pretrained=True, strategy='fine-tune', epochs=pt, patience=pt),
                dict(pretrained=True, strategy='feature-extraction', augment='none', epochs=pt, patience=pt),  # when is freezing enough?
                dict(pretrained=False, strategy='full-finetune', lr=DATA_EFFICIENCY['scratch_lr'], epochs=sc, patience=sc)]
    seeds = study.seeds if 'seed' in study.fixed else {**DATA_EFFICIENCY, **SETTINGS.get(study.preset, {})}['seeds']
    return [replace(base, **arm, fraction=f, seed=s).validate() for f in FRACTIONS for s in seeds for arm in arms(f)]

@claim('accuracy-misleads', 'the majority-class predictor reaches a test accuracy above 0.55 but a macro-F1 below 0.25')
def _(v): b = v['raw']['baseline']; return b['test_accuracy'] > 0.55 and b['test_macro_f1'] < 0.25

@claim('pretrained-ahead-everywhere', 'fine-tuned from pretrained weights has a higher mean test macro-F1 than scratch at every fraction')
def _(v): return all(d > 0 for d in v['raw']['pretraining_gain'].values())

@claim('pretraining-gain-not-growing', 'the pretraining gain in macro-F1 at the smallest fraction is no larger than on all the data')
def _(v): g = v['raw']['pretraining_gain']; return g[min(g)] <= g[max(g)]

@claim('crossing-below-half', 'pretrained reaches the macro-F1 of scratch trained on all the data with less than half of it')
def _(v): return v['raw']['crossing_f1'] < 0.5

@claim('freezing-never-ahead', 'the frozen probe has a lower mean test macro-F1 than fine-tuning at every fraction')
def _(v): return all(c[0] < 0 for c in v['raw']['freezing_cost'].values())

@claim('freezing-cost-shrinks', 'what freezing costs in macro-F1 is smaller at the smallest fraction than on all the data')
def _(v): c = v['raw']['freezing_cost']; return abs(c[min(c)][0]) < abs(c[max(c)][0])

@claim('accuracy-flatter', 'pretrained needs a larger share of the data to match scratch@100 % in accuracy than in macro-F1')
def _(v): return not v['raw']['crossing_acc'] < v['raw']['crossing_f1']
