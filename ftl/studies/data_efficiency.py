"How much labelled data: fine-tuned, a frozen probe and from scratch on nested stratified fractions of the training split"
from __future__ import annotations
import json
from dataclasses import replace
import numpy as np, pandas as pd
from ..models import get_arch
from ..evaluate import majority_baseline
from ..runner import Study, register
from ..records import read_records
from ..choices import best_valid_arch
from ..metrics import PRIMARY
from .levers import fitting_augmentation, census
from ..prose import num, pct, pm, table, title, claim, interval
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
                                f'{interval(r.test_macro_f1_diff, r.test_macro_f1_diff_lo95, r.test_macro_f1_diff_hi95)} {r.reference}'})
    pt = t[t.init == 'fine-tuned'].set_index('fraction')
    fz = t[t.init == 'frozen probe'].set_index('fraction')
    arms = tables.efficiency_arms(e).pivot_table(index=['fraction', 'seed'], columns='init', values='test_macro_f1')
    lo, hi = pt.index.min(), pt.index.max()
    per_seed = lambda a, b, f: (arms[a] - arms[b]).xs(f, level='fraction')  # one arm minus another at fraction f, seed by seed
    if len(fz):  # what freezing costs against fine-tuning, per fraction: enough where the interval reaches zero
        raw['freezing_cost'] = {f: (r.test_macro_f1_diff, r.test_macro_f1_diff_lo95, r.test_macro_f1_diff_hi95) for f, r in fz.iterrows()}
        raw['freezing_shrink'] = tables.paired_diff(per_seed('frozen probe', 'fine-tuned', lo), per_seed('frozen probe', 'fine-tuned', hi))
        v['freezing'] = dict(clear=[pct(f, 0) for f, r in fz.iterrows() if r.test_macro_f1_diff_hi95 < 0],
                             cost_full=f"{fz.loc[fz.index.max(), 'test_macro_f1_diff']:+.3f}", cost_min=f"{fz.loc[fz.index.min(), 'test_macro_f1_diff']:+.3f}",
                             shrink=interval(*raw['freezing_shrink']))
    if 'scratch' in arms:
        raw['pretraining_gain'] = {f: (r.test_macro_f1_diff, r.test_macro_f1_diff_lo95, r.test_macro_f1_diff_hi95) for f, r in pt.iterrows()}
        ahead = (arms['fine-tuned'] - arms['scratch']).dropna()
        lvl = tables.seed_level(e)  # the seed as the unit: its nested fractions are not independent pairs
        raw['pretraining_seed_mean'], raw['gain_slope'] = lvl['mean'], lvl['slope']
        v['efficiency_zero'] = [pct(f, 0) for f, r in pt.iterrows() if r.test_macro_f1_diff_lo95 <= 0 <= r.test_macro_f1_diff_hi95]
        v['pretraining'] = dict(ahead=num(int((ahead > 0).sum())), pairs=num(int((ahead != 0).sum())), lo=f'{pt.test_macro_f1_diff.min():+.3f}',
                                seed_mean=interval(*lvl['mean']), slope=interval(*lvl['slope']), seeds=num(lvl['n']),
                                hi=f'{pt.test_macro_f1_diff.max():+.3f}', full=f'{pt.test_macro_f1_diff.loc[hi]:+.3f}',
                                smallest=f'{pt.test_macro_f1_diff.loc[lo]:+.3f}')
    v.setdefault('pretraining', {}).update(smallest_frac=pct(lo, 0), smallest_images=num(pt.n_train.loc[lo]), smallest_class=num(pt.n_min_class.loc[lo]))
    sc = t[t.init == 'scratch'].set_index('fraction')
    if len(sc):
        v['pretraining']['scratch_epochs'] = num(sc.epochs.loc[sc.index.max()])  # what scratch had on all the data
        v['scratch_end'] = scratch_end(tables.efficiency_arms(e).query("init == 'scratch'").pipe(lambda d: d[d.fraction == d.fraction.max()]).record)
    if len(pt) > 1:  # did the last step of data still help the fine-tuned model?
        f2 = sorted(pt.index)[-2]
        raw['last_step'] = tables.paired_diff(arms['fine-tuned'].xs(hi, level='fraction'), arms['fine-tuned'].xs(f2, level='fraction'))
        v['last_step'] = dict(frac=pct(f2, 0), diff=interval(*raw['last_step']))
    cross = {m: tables.crossing(e, m) for m in ('test_accuracy', 'test_macro_f1')}
    raw['crossing'] = {m: (c['fraction'], c['lo95'], c['hi95']) for m, c in cross.items()}
    v['crossing'] = {m: dict(fraction=pct(c['fraction'], 0), images=num(round(c['fraction']*pt.n_train.max())) if np.isfinite(c['fraction']) else '—',
                             lo=pct(c['lo95'], 0), hi=pct(c['hi95'], 0), level=num(c['level']), reached=bool(np.isfinite(c['fraction'])))
                     for m, c in cross.items()}
    v['efficiency_full_images'] = num(pt.n_train.max())
    raw['baseline'] = majority_baseline(e.record.iloc[0].test)
    v['baseline'] = {k: num(x) for k, x in raw['baseline'].items()}
    n = int(t.seeds.max())
    v['efficiency_arch'], v['efficiency_seeds'], v['efficiency_seed_words'] = title(e.arch.iloc[0]), num(n), 'one seed' if n == 1 else f'{n} seeds'

LATE = 3  # a run whose validation macro-F1 peaks within its last LATE epochs was still improving when its schedule ended

def scratch_end(records) -> dict:
    "How the scratch runs on all the data ended: how many peaked on validation in their last epochs, and their last training loss"
    late = sum(max(range(len(r.history)), key=lambda i: r.history[i][PRIMARY]) >= len(r.history) - LATE for r in records)
    loss = [r.history[-1]['train_loss'] for r in records]
    return dict(late=num(late), n=num(len(loss)), last=num(LATE), loss_lo=f'{min(loss):.2f}', loss_hi=f'{max(loss):.2f}', still=late > len(loss)/2)

def budget_factor(fraction, min_share=0.25) -> float:
    "Epoch multiplier giving a run on `fraction` of the data at least `min_share` of the full-data optimizer steps"
    return max(1.0, min_share/fraction)

# scratch: its own lr, augmentation that fits the images, and up to `scratch_epochs_factor` times the pretrained budget,
# stopped once validation loss has not improved for `scratch_patience` epochs (its lowest-validation-loss epoch restored)
# the scratch lr per family (the first whose name the architecture's family starts with, else 'default'): the CNN grids ran at
# 1e-2; a randomly initialised ViT's training loss (lr_find, bench/scratch_lr.py -> results/benchmark/scratch-lr.txt) bottoms
# out near 1e-3 and is unstable above it, so it trains at the valley's order of magnitude (results/decisions.csv)
DATA_EFFICIENCY = dict(seeds=(0, 1, 2), scratch_lr={'ViT': 1e-4, 'default': 1e-2}, scratch_epochs_factor=3, scratch_patience=6)

def scratch_lr(arch) -> float:
    "The from-scratch arm's peak learning rate for `arch` (DATA_EFFICIENCY['scratch_lr'] by family)"
    family, lrs = get_arch(arch).family, DATA_EFFICIENCY['scratch_lr']
    return next((lr for f, lr in lrs.items() if family.startswith(f)), lrs['default'])
SETTINGS = {'tiny': dict(seeds=(0,), scratch_epochs_factor=1)}  # per preset: a first look trains one seed per cell, scratch on the pretrained budget

def _data_efficiency_outputs(study, df):
    lay = study.layout
    tab = tables.efficiency_table(df)
    tables.write_table(tab, lay.tables/'data_efficiency_table')
    cross = {m: tables.crossing(df, m) for m in ('test_accuracy', 'test_macro_f1')}
    cross['majority_baseline'] = majority_baseline(df.record.iloc[0].test)  # the same fixed test split for every run
    (lay.tables/'data_efficiency_crossing.json').write_text(json.dumps(cross, indent=1))
    figures.efficiency_plot(tab, path=lay.figures/'data_efficiency', baseline=cross['majority_baseline'],
                            title=f"{get_arch(df.arch.iloc[0]).title} on {df.dataset.iloc[0]}: fine-tuned, frozen probe and from scratch")

ARM_FIELDS = ('arch', 'pretrained', 'strategy', 'augment', 'lr', 'epochs', 'patience', 'monitor', 'fraction', 'seed')  # what a grid sets

def earlier_grid(study: Study) -> list:
    """The records of a complete grid on another architecture in the suite's folder, this study's own (its config rebuilt
    from the preset gives its key), from an earlier choice of backbone: shown while the chosen backbone's grid runs"""
    want = {c.key() for c in data_efficiency(study)}
    mine = lambda r: study.config(**{k: r.config[k] for k in ARM_FIELDS}).key() == r.key
    grids = {}
    for r in read_records(study.layout.results/'data-efficiency'):
        if r.key not in want and mine(r): grids.setdefault(r.config['arch'], []).append(r)
    full = [rs for a, rs in sorted(grids.items()) if len({r.key for r in rs}) == len(want)]
    return full[0] if full else []

@register('data-efficiency', outputs=_data_efficiency_outputs, values=values, title='How much labelled data', order=60,
          earlier=earlier_grid)
def data_efficiency(study: Study) -> list:
    """How much labelled data, on the best backbone by validation: pretrained (fine-tune), a frozen-feature probe and from
    scratch at nested stratified fractions, 3 seeds. Small fractions get more epochs so that every run has at least a quarter
    of the full-data steps. The pretrained arms train their whole one-cycle budget and restore their epoch by the preset's
    rule; scratch, with augmentation that fits the images, trains until its validation loss plateaus (see DATA_EFFICIENCY)"""
    arch = study.arch or best_valid_arch(study)
    base = study.config(arch=arch)
    fit, settings = fitting_augmentation(census(study)), {**DATA_EFFICIENCY, **SETTINGS.get(study.preset, {})}
    def arms(f):
        pt, sc = (int(round(base.epochs*k*budget_factor(f))) for k in (1, settings['scratch_epochs_factor']))
        return [dict(pretrained=True, strategy='fine-tune', epochs=pt, patience=pt),
                dict(pretrained=True, strategy='feature-extraction', augment='none', epochs=pt, patience=pt),  # when is freezing enough?
                dict(pretrained=False, strategy='full-finetune', lr=scratch_lr(arch), augment=fit, epochs=sc,
                     patience=DATA_EFFICIENCY['scratch_patience'], monitor='valid_loss')]
    seeds = study.seeds if 'seed' in study.fixed else settings['seeds']
    return [study.config(arch=arch, **arm, fraction=f, seed=s) for f in FRACTIONS for s in seeds for arm in arms(f)]

def _intervals(d: dict) -> str: return '; '.join(f'{pct(f, 0)} {interval(*x)}' for f, x in sorted(d.items(), reverse=True))

@claim('pretrained-ahead-in-mean', 'fine-tuned from pretrained weights has a higher mean test macro-F1 than scratch at every fraction')
def _(r): return all(x[0] > 0 for x in r['pretraining_gain'].values())

@claim('pretraining-ahead-seed-level', 'fine-tuned beats scratch averaged over the fractions seed by seed: the 95 % t-interval over seeds of the per-seed mean gain lies above zero', 'paired 95 % t-interval over seeds of the mean gain across fractions')
def _(r): d, lo, hi = r['pretraining_seed_mean']; return lo > 0, interval(d, lo, hi)

@claim('gain-trend-grows-when-scarce', 'the pretraining gain grows as the data halves: the 95 % t-interval over seeds of the per-seed slope of the gain per halving lies above zero', 'paired 95 % t-interval over seeds of per-seed slopes')
def _(r): d, lo, hi = r['gain_slope']; return lo > 0, interval(d, lo, hi)

@claim('pretraining-clear-every-fraction', "the paired 95 % interval of fine-tuned minus scratch test macro-F1 lies above zero at every fraction", 'paired 95 % t-interval per fraction')
def _(r): return all(x[1] > 0 for x in r['pretraining_gain'].values()), _intervals(r['pretraining_gain'])

@claim('crossing-below-half', 'fine-tuned reaches the test macro-F1 of scratch trained on all the data with less than half of it: the bootstrap 95 % interval of the crossing lies below one half', 'bootstrap 95 % interval over seeds')
def _(r): f, lo, hi = r['crossing']['test_macro_f1']; return bool(hi < 0.5), f'{pct(f, 0)} [{pct(lo, 0)}, {pct(hi, 0)}]'

@claim('accuracy-crossing-later', 'judged by accuracy, fine-tuned needs a larger share of the data to match scratch on all of it than judged by macro-F1: the two bootstrap intervals do not overlap', 'bootstrap 95 % intervals')
def _(r): a, f = r['crossing']['test_accuracy'], r['crossing']['test_macro_f1']; return bool(a[1] > f[2])

@claim('more-data-helps', 'the fine-tuned model scores a higher test macro-F1 on all the data than on the next smaller fraction: the paired 95 % interval lies above zero', 'paired 95 % t-interval')
def _(r): d, lo, hi = r['last_step']; return lo > 0, interval(d, lo, hi)

@claim('freezing-behind-in-mean', 'the frozen probe has a lower mean test macro-F1 than fine-tuning at every fraction')
def _(r): return all(c[0] < 0 for c in r['freezing_cost'].values())

@claim('freezing-clear-every-fraction', 'the paired 95 % interval of probe minus fine-tuned test macro-F1 lies below zero at every fraction', 'paired 95 % t-interval per fraction')
def _(r): return all(c[2] < 0 for c in r['freezing_cost'].values()), _intervals(r['freezing_cost'])

@claim('freezing-cost-shrinks', 'what freezing costs in test macro-F1 is smaller at the smallest fraction than on all the data: the paired 95 % interval of the difference lies above zero', 'paired 95 % t-interval')
def _(r): d, lo, hi = r['freezing_shrink']; return lo > 0, interval(d, lo, hi)
