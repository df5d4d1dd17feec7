"""The study's numbers and claims for the report, computed from the records DataFrames and tables (never typed).
A claim is a sentence of the report with the comparison that makes it true; the build fails, naming it, if a rerun flips it"""
from __future__ import annotations
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
import numpy as np, pandas as pd
from . import tables
from .errors import UserError
from .records import OVERFIT_RISE, read_records, records_frame
from .benchmark import cost_table
from .evaluate import majority_baseline
from .analysis import RULES, with_commentary
from .strategies import describe_augmentation
from .train import grid_runs, strategy_order

__all__ = ['num', 'pct', 'table', 'Claim', 'ClaimFailed', 'check_claims', 'CLAIMS']

def num(x, digits=3) -> str:
    "A number for prose: integers as integers, others with `digits` decimals, missing as an em dash"
    if x is None or (isinstance(x, float) and np.isnan(x)): return '—'
    whole = isinstance(x, (int, np.integer)) or (float(x).is_integer() and abs(x) >= 1)  # a count, even 0; a score 0.0 keeps decimals
    return f'{int(x):,}' if whole else f'{x:.{digits}f}'

def title(arch) -> str:
    "An architecture as a reader knows it (MobileNetV2), not by its registry name"
    from .models import get_arch
    return get_arch(arch).title or arch

HYPER_NAMES = dict(wd='weight decay', sqr_mom='β2', mom='β1', eps='ε')
MONITOR_NAMES = dict(valid_loss='validation loss', macro_f1='validation macro-F1', accuracy='validation accuracy', last='final epoch')

def words(text: str) -> str:
    "Monitor names in a table cell as words"
    for k, w in MONITOR_NAMES.items(): text = text.replace(k, w)
    return text

def optimizer_words(opt: str, hypers: dict) -> str:
    "An optimizer and its settings in words"
    return f"{opt} (" + ', '.join(f'{HYPER_NAMES.get(k, k)} {v:.3g}' for k, v in hypers.items()) + ')'

METRIC_NAMES = dict(test_accuracy='accuracy', test_macro_f1='macro-F1')
TASK_NAMES = dict(four='four levels', binary='functional vs defective')

def pct(x, digits=1) -> str: return '—' if x is None or np.isnan(x) else f'{100*x:.{digits}f} %'

def pm(mean, std, digits=3) -> str: return num(mean, digits) + (f' ± {std:.{digits}f}' if pd.notna(std) else '')

def table(df: pd.DataFrame, cols: dict) -> dict:
    "A table for the typesetter: headers and rows of strings, from `cols` = {header: function of a row}"
    return dict(headers=list(cols), rows=[[f(r) for f in cols.values()] for _, r in df.iterrows()])

@dataclass
class Claim:
    "A comparative sentence of the report and the check that makes it true on the results"
    name: str
    text: str
    check: Callable  # (values) -> bool

class ClaimFailed(UserError): "A claim of the report that the current results no longer support"

CLAIMS: list = []

def claim(name, text):
    "Decorator: register a check as the claim `name`"
    def deco(fn): CLAIMS.append(Claim(name, text, fn)); return fn
    return deco

def check_claims(v: dict) -> list:
    "Every claim whose inputs exist, checked; a `ClaimFailed` naming each one that does not hold"
    out, failed = [], []
    for c in CLAIMS:
        try: holds = bool(c.check(v))
        except KeyError: continue  # its section is not in these results
        out.append(dict(name=c.name, text=c.text, holds=holds))
        if not holds: failed.append(c)
    if failed: raise ClaimFailed('; '.join(f"claim {c.name!r} no longer holds: {c.text}" for c in failed)
                                 + '. Rewrite those sentences of report/report.typ and their claims in ftl/findings.py')
    return out

# --- the claims the report's prose makes ----------------------------------------------------------------------------------

@claim('resolution-helps', 'validation macro-F1 is higher at the largest image size measured than at the smallest')
def _(v): r = v['raw']['resolution']; return r[-1]['valid_macro_f1'] > r[0]['valid_macro_f1']

@claim('accuracy-misleads', 'the majority-class predictor reaches a test accuracy above 0.55 but a macro-F1 below 0.25')
def _(v): b = v['raw']['baseline']; return b['test_accuracy'] > 0.55 and b['test_macro_f1'] < 0.25

@claim('pretrained-ahead-everywhere', 'fine-tuned from pretrained weights has a higher mean test macro-F1 than scratch at every fraction')
def _(v): return all(d > 0 for d in v['raw']['pretraining_gain'].values())

@claim('pretraining-gain-not-growing', 'the pretraining gain in macro-F1 at the smallest fraction is no larger than on all the data')
def _(v): g = v['raw']['pretraining_gain']; return g[min(g)] <= g[max(g)]

@claim('crossing-below-half', 'pretrained reaches the macro-F1 of scratch trained on all the data with less than half of it')
def _(v): return v['raw']['crossing_f1'] < 0.5

@claim('size-plateau', 'above the chosen study size, validation macro-F1 gains less than 0.02 while training time grows')
def _(v):
    r, chosen = v['raw']['resolution'], v['raw']['study_size']
    at = next(x for x in r if x['size'] == chosen)
    return all(x['valid_macro_f1'] - at['valid_macro_f1'] < 0.02 and x['minutes'] > at['minutes'] for x in r if x['size'] > chosen)

@claim('restore-rules-close', 'the final epoch and the validation-loss pick differ by less than 0.02 validation macro-F1 on average, in both directions across sizes')
def _(v):
    d = np.array(v['raw']['rule_last']) - np.array(v['raw']['rule_loss'])
    return abs(d.mean()) < 0.02 and (d > 0).any() and (d < 0).any()

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

@claim('finetune-beats-probe', 'for every backbone, fine-tuning beats the linear probe on its frozen features in test macro-F1')
def _(v): return all(g > 0 for g in v['raw']['domain_gap'].values())

@claim('ssl-weakest-probe-largest-gap', 'the self-supervised backbone has the weakest probe (validation macro-F1) and the largest fine-tuning gain')
def _(v):
    ssl = next(a for a, p in v['raw']['pretraining'].items() if 'self-supervised' in p)
    return min(v['raw']['probe_f1'], key=v['raw']['probe_f1'].get) == ssl and max(v['raw']['domain_gap'], key=v['raw']['domain_gap'].get) == ssl

@claim('probe-trails-finetune', 'feature extraction on frozen features trails full fine-tuning in test macro-F1 (augmentation off)')
def _(v): return v['raw']['probe_gap'] > 0

@claim('augmented-still-improving', 'at least half of the augmented strategy runs reach their lowest validation loss in the last two epochs')
def _(v): return v['raw']['aug_at_cap'] >= 0.5

@claim('augmentation-helps-none', 'the augmented arm has a lower mean validation macro-F1 than the unaugmented one for every strategy')
def _(v): return all(d < 0 for d in v['raw']['aug_valid_diff'].values())

@claim('unaugmented-overfit-in-loss', 'every unaugmented run that trains the backbone ends with validation loss more than 10 % above its minimum while training loss fell, and no augmented run does')
def _(v): return v['raw']['overfit_none'] == 1 and v['raw']['overfit_aug'] == 0

@claim('valid-test-disagree', 'the best strategies cell on validation is not the best on test')
def _(v): return v['raw']['best_strategy_valid'] != v['raw']['best_strategy_test']

@claim('freezing-never-ahead', 'the frozen probe has a lower mean test macro-F1 than fine-tuning at every fraction')
def _(v): return all(c[0] < 0 for c in v['raw']['freezing_cost'].values())

@claim('freezing-cost-shrinks', 'what freezing costs in macro-F1 is smaller at the smallest fraction than on all the data')
def _(v): c = v['raw']['freezing_cost']; return abs(c[min(c)][0]) < abs(c[max(c)][0])

@claim('accuracy-flatter', 'pretrained needs a larger share of the data to match scratch@100 % in accuracy than in macro-F1')
def _(v): return not v['raw']['crossing_acc'] < v['raw']['crossing_f1']

@claim('worst-is-rarest', 'the class with the lowest test F1 is the class with the fewest training images')
def _(v): return v['raw']['worst_class'] == v['raw']['rarest_class']

@claim('cnns-faster', 'at batch 1 on the CPU, at the largest size timed, the ViT takes longer per image than each CNN, and has more parameters')
def _(v):
    lat, n, vit = v['raw']['latency'], v['raw']['params'], 'vit_small_dinov2'
    return all(lat[vit] > lat[a] and n[vit] > n[a] for a in lat if a != vit)

@claim('below-published', 'the binary headline model stays below the 88.4 % accuracy Deitsch et al. report for a fine-tuned VGG-19')
def _(v): return v['raw']['headline_acc']['elpv-binary'] < 0.884

@claim('bf16-within-noise', 'bf16 trained faster, and the 95 % interval of its paired validation macro-F1 difference to fp32 contains zero')
def _(v): b = v['raw']['bf16']; return b['speedup'] > 1 and b['valid_ci'][0] < 0 < b['valid_ci'][1]

@claim('tta-no-gain', 'test-time augmentation raises the test macro-F1 of neither headline model')
def _(v): return all(g <= 0 for g in v['raw']['tta_gain'].values())

@claim('likely-defective-hardest', 'likely-defective is the class with the lowest test F1 of the analysed model')
def _(v): return v['raw']['worst_class'] == 'likely-defective'

@claim('far-errors-common', 'between 40 % and 60 % of the analysed model\'s test errors skip a defect level ("about half")')
def _(v): return 0.4 <= v['raw']['ordinal']['far_share'] <= 0.6

@claim('middle-levels-suspect', 'cleanlab flags the training labels of each middle level at a higher rate than those of either end level')
def _(v):
    r, c = v['raw']['flag_rates'], v['raw']['classes']
    return min(r[k] for k in c[1:-1]) > max(r[c[0]], r[c[-1]])

# --- the values the report typesets -----------------------------------------------------------------------------------------

def _native_size(source) -> int:
    "The width of the dataset's images as stored (before ftl resizes them)"
    from PIL import Image
    files = source.info.get('files')
    if files is None: return source.images.shape[1]
    with Image.open(files[0]) as im: return im.size[0]

def _architectures(v, raw, frames, lay, p):
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

def _domain_gap(v, raw, frames, lay, p):
    "How far the domain is from each backbone's pretraining: a probe on frozen features against the fine-tuned backbone"
    g, a = frames.get('domain-gap', pd.DataFrame()), frames.get('architectures', pd.DataFrame())
    if not (len(g) and len(a)): return
    t = tables.domain_gap_table(g, a)
    v['domain_gap'] = table(t, {'architecture': lambda r: title(r.arch), 'pretraining': lambda r: r.pretraining,
                                'probe valid macro-F1': lambda r: pm(r.valid_macro_f1_mean_probe, r.valid_macro_f1_std_probe),
                                'probe test macro-F1': lambda r: pm(r.test_macro_f1_mean_probe, r.test_macro_f1_std_probe),
                                'fine-tuned test macro-F1': lambda r: pm(r.test_macro_f1_mean_finetuned, r.test_macro_f1_std_finetuned),
                                'gap': lambda r: f'{r.test_macro_f1_gap:+.3f}'})
    raw['domain_gap'], raw['probe_f1'] = dict(zip(t.arch, t.test_macro_f1_gap)), dict(zip(t.arch, t.valid_macro_f1_mean_probe))
    raw['pretraining'] = dict(zip(t.arch, t.pretraining))
    v['domain_gap_range'] = dict(lo=f'{t.test_macro_f1_gap.min():+.3f}', hi=f'{t.test_macro_f1_gap.max():+.3f}',
                                 best_probe=title(t.loc[t.valid_macro_f1_mean_probe.idxmax(), 'arch']))

def _strategies(v, raw, frames, lay, p):
    "Which way of fine-tuning, augmentation, overfitting"
    s = frames.get('strategies', pd.DataFrame())
    if not len(s): return
    t = tables.strategy_table(s, strategy_order(p['augment_arms']))
    v['strategies'] = table(t, {'strategy': lambda r: r.strategy, 'augmentation': lambda r: r.augment, 'seeds': lambda r: num(r.seeds),
                                'valid macro-F1': lambda r: pm(r.valid_macro_f1_mean, r.valid_macro_f1_std),
                                'test accuracy': lambda r: pm(r.test_accuracy_mean, r.test_accuracy_std),
                                'test macro-F1': lambda r: pm(r.test_macro_f1_mean, r.test_macro_f1_std),
                                'lowest valid loss at epoch': lambda r: f'{num(r.min_valid_loss_epoch, 1)} of {num(r.epochs_run, 1)}',
                                'loss gap at end': lambda r: f'{r.gap_last:.2f}',
                                'minutes': lambda r: num(r.train_min, 1)})
    best, top_test = t.loc[t.valid_macro_f1_mean.idxmax()], t.loc[t.test_macro_f1_mean.idxmax()]
    v['best_strategy'] = dict(name=best.strategy, augment=best.augment, valid_f1=num(best.valid_macro_f1_mean),
                              test_f1=num(best.test_macro_f1_mean), arch=title(best.arch),
                              test_name=top_test.strategy, test_augment=top_test.augment, test_test_f1=num(top_test.test_macro_f1_mean),
                              test_valid_f1=num(top_test.valid_macro_f1_mean))
    raw['best_strategy_valid'], raw['best_strategy_test'] = (best.strategy, best.augment), (top_test.strategy, top_test.augment)
    arm = p['augment_arms'][1]
    on, off = (t[t.augment == a].set_index('strategy').valid_macro_f1_mean for a in (arm, 'none'))
    dv = (on - off).dropna()
    raw['aug_valid_diff'] = dv.to_dict()
    v['augment_effect'] = dict(arm=arm, least=f'{dv.max():+.3f}', most=f'{dv.min():+.3f}')
    fe, full = (t[(t.strategy == n) & (t.augment == 'none')].test_macro_f1_mean for n in ('feature-extraction', 'full-finetune'))
    raw['probe_gap'] = float(full.iloc[0] - fe.iloc[0]) if len(fe) and len(full) else np.nan
    v['probe_gap'] = f"{raw['probe_gap']:+.3f}"
    trains = s[(s.augment == 'none') & (s.strategy != 'feature-extraction')]
    aug = s[s.augment != 'none']
    raw['overfit_none'], raw['overfit_aug'] = float(trains.valid_up_train_down.mean()), float(aug.valid_up_train_down.mean())
    v['overfit'] = dict(none=num(int(trains.valid_up_train_down.sum())), none_of=num(len(trains)), aug=num(int(aug.valid_up_train_down.sum())),
                        aug_of=num(len(aug)), rise=pct(OVERFIT_RISE, 0), none_min_epoch=num(trains.min_valid_loss_epoch.mean(), 1),
                        none_gap=num(trains.gap_last.mean(), 2), aug_gap=num(aug.gap_last.mean(), 2))
    raw['aug_at_cap'] = float((aug.min_valid_loss_epoch >= aug.epochs_run - 1).mean()) if len(aug) else np.nan

def _imbalance(v, raw, frames, lay, p):
    "Class imbalance: the best strategies configuration with and without a class-weighted loss"
    i = frames.get('imbalance', pd.DataFrame())
    if not len(i): return
    t = tables.seed_summary(i, ['class_weights'], ('valid_macro_f1', 'test_accuracy', 'test_macro_f1')).set_index('class_weights')
    v['imbalance'] = table(t.reset_index(), {'class-weighted loss': lambda r: 'yes' if r.class_weights else 'no', 'seeds': lambda r: num(r.seeds),
                                             'valid macro-F1': lambda r: pm(r.valid_macro_f1_mean, r.valid_macro_f1_std),
                                             'test accuracy': lambda r: pm(r.test_accuracy_mean, r.test_accuracy_std),
                                             'test macro-F1': lambda r: pm(r.test_macro_f1_mean, r.test_macro_f1_std)})
    if {True, False} <= set(t.index):
        raw['class_weights_gain'] = float(t.loc[True, 'valid_macro_f1_mean'] - t.loc[False, 'valid_macro_f1_mean'])
        v['class_weights'] = dict(gain=f"{raw['class_weights_gain']:+.3f}", adopted=raw['class_weights_gain'] > 0,
                                  test_gain=f"{t.loc[True, 'test_macro_f1_mean'] - t.loc[False, 'test_macro_f1_mean']:+.3f}",
                                  recipe=f"{i.strategy.iloc[0]}, augmentation {i.augment.iloc[0]}", arch=title(i.arch.iloc[0]))

def _efficiency(v, raw, frames, lay, p):
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


def _resolution(v, raw, frames, lay, p):
    "Which image size, and which epoch to restore"
    r = frames.get('resolution', pd.DataFrame())
    if not len(r): return
    t = tables.seed_summary(r, ['size'], ('valid_accuracy', 'valid_macro_f1', 'test_accuracy', 'test_macro_f1')).sort_values('size')
    raw['resolution'] = [dict(size=int(x['size']), valid_macro_f1=x.valid_macro_f1_mean, minutes=x.train_min) for _, x in t.iterrows()]
    raw['study_size'] = p['study_size']; v['study_size'] = num(p['study_size'])
    v['resolution'] = table(t, {'size (px)': lambda x: num(x['size']), 'valid accuracy': lambda x: num(x.valid_accuracy_mean),
                                'valid macro-F1': lambda x: num(x.valid_macro_f1_mean), 'test accuracy': lambda x: num(x.test_accuracy_mean),
                                'test macro-F1': lambda x: num(x.test_macro_f1_mean), 'minutes': lambda x: num(x.train_min, 1)})
    sel = tables.selection_table(r)
    raw['rule_last'], raw['rule_loss'] = list(sel[sel.rule == 'last'].valid_macro_f1), list(sel[sel.rule == 'valid_loss'].valid_macro_f1)
    v['selection'] = table(sel.pivot_table(index='size', columns='rule', values='valid_macro_f1').reset_index(),
                           {'size (px)': lambda x: num(x['size']), 'valid loss': lambda x: num(x['valid_loss']),
                            'valid macro-F1 (optimistic)': lambda x: num(x['macro_f1']), 'last epoch': lambda x: num(x['last'])})
    v['resolution_setup'] = dict(arch=title(r.arch.iloc[0]), strategy=r.strategy.iloc[0], augment=r.augment.iloc[0], epochs=num(r.epochs.iloc[0]))


def _analysis(v, raw, frames, lay, p):
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


def _hyper(v, raw, frames, lay, p):
    "The hyperparameters of every experiment"
    every = pd.concat([f for f in frames.values() if len(f)], ignore_index=True) if any(len(f) for f in frames.values()) else pd.DataFrame()
    if not len(every): return
    h = tables.hyperparameter_table(every)
    main = h.dataset.mode()[0]  # the study's dataset; a row on another (the binary headline) says which
    hyper = table(h, {'architecture': lambda x: title(x.arch), 'init': lambda x: x.init, 'strategy': lambda x: x.strategy,
                      'data': lambda x: pct(x.fraction, 0) + ('' if x.dataset == main else f", {x.dataset.removeprefix(main + '-')}"), 'px': lambda x: num(x['size']), 'epochs': lambda x: num(x.epochs),
                      'schedule per stage': lambda x: x.schedule.replace('stage ', 'S'),
                      'early stopping': lambda x: words(x.early_stopping), 'augmentation': lambda x: x.augmentation,
                      'batch': lambda x: num(x.batch_size), 'class weights': lambda x: x.class_weights, 'precision': lambda x: x.precision, 'seeds': lambda x: x.seeds})
    v['hyper'], v['hyper_same'] = lift_constant(hyper)
    norms = {}  # the statistics each backbone was pretrained with (timm's pretrained config), as the records applied them
    for r in every.record: norms.setdefault(json.dumps(r.normalization), set()).add(title(r.config['arch']))
    trio = lambda xs: num(xs[0]) if len(set(xs)) == 1 else ' / '.join(num(x) for x in xs)
    v['normalization'] = [f"mean {trio(n['mean'])}, standard deviation {trio(n['std'])} for {' and '.join(sorted(archs))}"
                          for n, archs in ((json.loads(k), a) for k, a in norms.items())]
    r0 = every.record.iloc[0].hyperparams
    v['hyper_common'] = dict(optimizer=optimizer_words(r0['optimizer'], r0['opt_hypers']), batch=num(h.batch_size.iloc[0]))

def _precision(v, raw, frames, lay, p):
    "What bfloat16 autocast costs in accuracy and saves in time: the architecture cells trained both ways, seed by seed"
    folder = lay.results/'architectures'
    if not p.get('bf16_families') or not folder.exists(): return
    pairs = tables.precision_pairs(records_frame([r for r in read_records(folder) if not r.reused_from]))
    if not len(pairs) or 'bf16' not in pairs.columns.get_level_values(1): return
    other = [c for c in pairs.columns.get_level_values(1).unique() if c != 'bf16'][0]  # the precision compared against
    d, lo, hi = tables.paired_diff(pairs[('valid_macro_f1', 'bf16')], pairs[('valid_macro_f1', other)])
    dt, lot, hit = tables.paired_diff(pairs[('test_macro_f1', 'bf16')], pairs[('test_macro_f1', other)])
    speed = pairs[('train_seconds', other)].sum()/pairs[('train_seconds', 'bf16')].sum()
    v['bf16'] = dict(arch=title(pairs.index.get_level_values('arch')[0]), px=num(pairs.index.get_level_values('size')[0]),
                     seeds=num(len(pairs)), speedup=f'{speed:.1f}',
                     valid_diff=f'{d:+.3f} [{lo:+.3f}, {hi:+.3f}]', test_diff=f'{dt:+.3f} [{lot:+.3f}, {hit:+.3f}]')
    raw['bf16'] = dict(valid_ci=(lo, hi), speedup=speed)

def lift_constant(t: dict) -> tuple:
    "A typesetter table without the columns that hold one value in every row, and those columns as 'header: value' words"
    same = [i for i, _ in enumerate(t['headers']) if len(t['rows']) > 1 and len({r[i] for r in t['rows']}) == 1]
    keep = [i for i in range(len(t['headers'])) if i not in same]
    return (dict(headers=[t['headers'][i] for i in keep], rows=[[r[i] for i in keep] for r in t['rows']]),
            [f"{t['headers'][i]}: {t['rows'][0][i]}" for i in same])

def _benchmark(v, raw, frames, lay, p):
    "The full inference benchmark, every device measured"
    files = sorted((lay.results/'benchmark').glob('benchmark_*.csv'))
    if not files: return
    b = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    v['benchmark'] = table(b, {'architecture': lambda x: title(x.arch), 'device': lambda x: x.device_name, 'px': lambda x: num(x.image_size),
                               'precision': lambda x: x.precision, 'params (M)': lambda x: num(x.params/1e6, 2),
                               'MB fp32 / fp16': lambda x: f'{x.size_mb_fp32:.1f} / {x.size_mb_fp16:.1f}',
                               'ms per image, batch 1 (IQR)': lambda x: f'{x.latency_ms_bs1:.1f} ({x.latency_ms_bs1_iqr:.1f})',
                               'images/s, batch': lambda x: f'{x.throughput_img_s:.0f}, {x.throughput_bs}', 'threads': lambda x: num(x.threads)})
    v['gpu_measured'] = bool((b.device != 'cpu').any())

def _headline(v, raw, frames, lay, p):
    "The headline models: the best recipe at full resolution, four classes and binary, with and without TTA"
    h = frames.get('headline', pd.DataFrame())
    if not len(h): return
    from .suites import HEADLINE
    task = lambda d: d.replace('elpv-binary', 'binary').replace('elpv', 'four')
    goals = {d: {m: (g, h.set_index('dataset').loc[d, m] - g) for m, g in gs.items()} for d, gs in HEADLINE['goals'].items() if d in set(h.dataset)}
    v['headline'] = {task(r.dataset): dict(
        accuracy=pct(r.test_accuracy), f1=num(r.test_macro_f1), tta_accuracy=pct(r.tta_accuracy), tta_f1=num(r.tta_macro_f1),
        size=num(r['size']), arch=title(r.arch), strategy=r.strategy, minutes=num(r.train_seconds/60, 0),
        met=all(d >= 0 for _, d in goals.get(r.dataset, {}).values()),
        short=[f"{METRIC_NAMES[m]} by {abs(d):.3f}" for m, (_, d) in goals.get(r.dataset, {}).items() if d < 0]) for _, r in h.iterrows()}
    goal_words = lambda d: ', '.join(f"{METRIC_NAMES[m]} ≥ {g:.2f}" for m, (g, _) in goals.get(d, {}).items()) or '—'
    h = tables.in_order(h, dict(dataset=list(HEADLINE['datasets'])))
    v['headline_table'] = table(h, {'task': lambda r: TASK_NAMES[task(r.dataset)],
                                    'test accuracy': lambda r: num(r.test_accuracy), 'test macro-F1': lambda r: num(r.test_macro_f1),
                                    'with TTA: accuracy': lambda r: num(r.tta_accuracy), 'macro-F1': lambda r: num(r.tta_macro_f1),
                                    'goal': lambda r: goal_words(r.dataset)})
    raw['headline_acc'] = {r.dataset: max(r.test_accuracy, r.tta_accuracy) for _, r in h.iterrows()}
    raw['tta_gain'] = {r.dataset: r.tta_macro_f1 - r.test_macro_f1 for _, r in h.iterrows()}
    tta = [r.record.hyperparams['tta'] for _, r in h.iterrows() if r.record.hyperparams.get('tta')]
    if tta: v['headline_tta'] = tta_words(tta[0])

def tta_words(aug: dict) -> dict:
    "What fastai's `Learner.tta` does with the run's augmentation, its view count and blend weight read from its signature"
    import inspect
    from fastai.learner import Learner
    d = {k: p.default for k, p in inspect.signature(Learner.tta).parameters.items()}
    return dict(views=num(d['n']), augmentation=aug['description'], weight=num(1 - d['beta'], 2), plain=num(d['beta'], 2))

def _budget(v, raw, frames, lay, p):
    "What the study's runs cost: training (and feature) minutes per suite, each run counted once, as the records measured them"
    seen, minutes = set(), {}
    for name, f in frames.items():
        for r in (f.record if len(f) else []):
            if r.key in seen or r.reused_from: continue
            seen.add(r.key); minutes[name] = minutes.get(name, 0) + (r.train_seconds + (r.feature_seconds or 0))/60
    if not minutes: return
    raw['budget_hours'] = sum(minutes.values())/60
    v['budget'] = dict(hours=num(raw['budget_hours'], 1), runs=num(len(seen)),
                       per_suite=[f'{n} {m:.1f} min' if m < 10 else f'{n} {m:.0f} min' for n, m in minutes.items()])

SECTIONS = [_architectures, _domain_gap, _strategies, _imbalance, _efficiency, _resolution, _analysis, _hyper, _precision, _benchmark, _headline, _budget]  # the report's order


def values(frames: dict, layout, source, presets: dict, preset: str, analysed=None) -> dict:
    """Everything the report prints, formatted, plus the raw numbers its claims check (`raw`), from the records (`frames`:
    complete suites), `layout`'s files and the record of the model the analysis studied (`analysed`, this preset's or None)"""
    v, raw = {}, {}
    counts, split = source.counts(), {s: int((source.split == s).sum()) for s in ('train', 'valid', 'test')}
    v['data'] = dict(n=num(len(source.labels)), classes=source.classes, counts={k: num(c) for k, c in counts.items()},
                     split={k: num(n) for k, n in split.items()}, valid_counts={k: num(c) for k, c in source.counts('valid').items()}, split_fracs=[pct(f, 0) for f in source.info.get('split_fracs', ())],
                     native_px=num(_native_size(source)), mono=num(int((source.info.get('cell_type', np.array([])) == 'mono').sum())),
                     poly=num(int((source.info.get('cell_type', np.array([])) == 'poly').sum())))
    p = {**presets[preset], 'name': preset, 'study_size': presets.get('study', presets[preset])['size'], 'analysed': analysed}  # the study preset's size, chosen from the resolution runs
    v['preset'] = dict(name=preset, size=num(p['size']), epochs=num(p['epochs']), patience=num(p['patience']), bs=num(p['bs']),
                       seeds=num(len(p['seeds'])), augment_arms=list(p['augment_arms']),
                       augment_words=[f"{a} ({describe_augmentation(a)['description']})" for a in p['augment_arms'] if a != 'none'],
                       restore=MONITOR_NAMES[p.get('monitor', 'valid_loss')], whole=p['patience'] >= p['epochs'], first_look=preset == 'quick')
    for section in SECTIONS: section(v, raw, frames, layout, p)
    v['raw'] = raw
    v['claims'] = check_claims(v)
    return v
