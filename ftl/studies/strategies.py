"Which way of fine-tuning: every strategy, augmentation off and on, on the grids' backbone; overfitting signals"
from __future__ import annotations
import numpy as np, pandas as pd
from ..models import get_arch
from ..strategies import STRATEGIES
from ..config import strategy_order
from ..records import OVERFIT_RISE
from ..runner import Study, register
from ..choices import best_arch
from ..prose import num, pct, pm, table, title, claim, interval, welch, sign_test, p_words, ALPHA
from .. import tables, figures


def values(v, raw, frames, lay, p):
    "Which way of fine-tuning, augmentation, overfitting"
    s = frames.get('strategies', pd.DataFrame())
    if not len(s): return
    v['strategy_restored'] = num(int(s.record.map(figures.restored_early).sum()))  # runs whose curves mark a restored epoch
    t = tables.strategy_table(s, strategy_order(p['augment_arms']))
    v['strategies'] = table(t, {'strategy': lambda r: r.strategy, 'augmentation': lambda r: r.augment, 'seeds': lambda r: num(r.seeds),
                                'valid macro-F1': lambda r: pm(r.valid_macro_f1_mean, r.valid_macro_f1_std),
                                'test accuracy': lambda r: pm(r.test_accuracy_mean, r.test_accuracy_std),
                                'test macro-F1': lambda r: pm(r.test_macro_f1_mean, r.test_macro_f1_std),
                                'lowest valid loss at epoch': lambda r: f'{num(r.min_valid_loss_epoch, 1)} of {num(r.epochs_run, 1)}',
                                'train-valid gap at end': lambda r: f'{r.gap_last:.2f}',
                                'minutes': lambda r: num(r.train_min, 1)})
    best, top_test = t.loc[t.valid_macro_f1_mean.idxmax()], t.loc[t.test_macro_f1_mean.idxmax()]
    v['best_strategy'] = dict(name=best.strategy, augment=best.augment, valid_f1=num(best.valid_macro_f1_mean),
                              test_f1=num(best.test_macro_f1_mean), arch=title(best.arch),
                              test_name=top_test.strategy, test_augment=top_test.augment, test_test_f1=num(top_test.test_macro_f1_mean),
                              test_valid_f1=num(top_test.valid_macro_f1_mean))
    raw['best_strategy_valid'], raw['best_strategy_test'] = (best.strategy, best.augment), (top_test.strategy, top_test.augment)
    runs = lambda st, aug, m='valid_macro_f1': s[(s.strategy == st) & (s.augment == aug)].set_index('seed')[m]
    rivals = t[(t.augment == best.augment) & (t.strategy != best.strategy) & (t.strategy != 'feature-extraction')]
    raw['strategy_rivals'] = {r.strategy: welch(runs(best.strategy, best.augment), runs(r.strategy, best.augment)) for _, r in rivals.iterrows()}
    v['best_strategy'].update(rivals=num(len(rivals)), tested=bool(t.seeds.min() > 1), within=f'{(best.valid_macro_f1_mean - rivals.valid_macro_f1_mean).max():.3f}' if len(rivals) else '—',
                              separated=[k for k, (d, p) in raw['strategy_rivals'].items() if p < ALPHA],
                              not_separated=[k for k, (d, p) in raw['strategy_rivals'].items() if not p < ALPHA])
    if len(p['augment_arms']) > 1:  # the augmented arm against none, strategy by strategy and seed by seed
        arm = p['augment_arms'][1]
        on, off = (t[t.augment == a].set_index('strategy').valid_macro_f1_mean for a in (arm, 'none'))
        dv = (on - off).dropna()
        pairs = pd.concat([runs(st, arm) - runs(st, 'none') for st in dv.index]).dropna()
        raw['aug_pairs'] = dict(lower=int((pairs < 0).sum()), higher=int((pairs > 0).sum()))
        v['augment_effect'] = dict(arm=arm, least=f'{dv.max():+.3f}', most=f'{dv.min():+.3f}', lower=num(int((pairs < 0).sum())),
                                   pairs=num(int((pairs != 0).sum())), higher=num(int((pairs > 0).sum())), every=bool((dv < 0).all()))
    fe, chosen = runs('feature-extraction', best.augment), runs(best.strategy, best.augment)  # on validation: it ranks strategies
    if len(fe) and len(chosen) and best.strategy != 'feature-extraction':  # freezing against the strategy validation chose
        raw['probe_gap'] = tables.paired_diff(chosen, fe)
        v['probe_gap'], v['probe_ref'] = interval(*raw['probe_gap']), f'{best.strategy}, augmentation {best.augment}'
    trains = s[(s.augment == 'none') & (s.strategy != 'feature-extraction')]
    aug = s[(s.augment != 'none') & (s.strategy != 'feature-extraction')]  # the same strategies as `trains`, augmented
    raw['overfit_none'], raw['overfit_aug'] = float(trains.valid_up_train_down.mean()), float(aug.valid_up_train_down.mean()) if len(aug) else np.nan
    rise = [r.history[-1]['macro_f1'] - min(r.history, key=lambda e: e['valid_loss'])['macro_f1'] for r in trains.record]
    raw['f1_after_loss_min'] = dict(up=sum(d > 0 for d in rise), down=sum(d < 0 for d in rise))
    v['overfit'] = dict(none=num(int(trains.valid_up_train_down.sum())), none_of=num(len(trains)), aug=num(int(aug.valid_up_train_down.sum())),
                        aug_of=num(len(aug)), rise=pct(OVERFIT_RISE, 0), none_min_epoch=num(trains.min_valid_loss_epoch.mean(), 1),
                        none_gap=num(trains.gap_last.mean(), 2), aug_gap=num(aug.gap_last.mean(), 2) if len(aug) else '—',
                        f1_up=num(raw['f1_after_loss_min']['up']), f1_runs=num(len(rise)))
    raw['aug_at_cap'] = float((aug.min_valid_loss_epoch >= aug.epochs_run - 1).mean()) if len(aug) else np.nan
    v['overfit']['aug_at_cap'] = pct(raw['aug_at_cap'], 0)

def _strategies_outputs(study, df):
    lay = study.layout
    main = df.arch.value_counts().index[0]  # the suite's architecture; other rows: runs of an earlier choice
    df = tables.in_order(df.assign(other=df.arch != main), dict(other=[False], arch=sorted(df.arch.unique()), **strategy_order(study.settings['augment_arms']), seed=sorted(df.seed.unique())))
    tables.write_table(tables.strategy_table(df), lay.tables/'strategies_table')
    title = lambda r: f"{r.config['strategy']}\naug {r.config['augment']}" + ('' if r.config['arch'] == main else f", {get_arch(r.config['arch']).title}")
    figures.training_curves(list(df.record), title, lay.figures/'curves_strategies', f"Strategies on {get_arch(main).title}", ncols=len(STRATEGIES))  # two rows, no empty panel

@register('strategies', export=True, outputs=_strategies_outputs, values=values, title='Which way of fine-tuning', order=30)
def strategies(study: Study) -> list:
    "Which way of fine-tuning: every strategy, augmentation off and on, on the best (or given) architecture at 100 % data"
    arch = study.arch or best_arch(study)
    return [study.config(arch=arch, strategy=st, augment=aug, seed=s)
            for st in STRATEGIES for aug in study.settings['augment_arms'] for s in study.seeds]

@claim('probe-trails-finetune', 'feature extraction trails the strategy validation chose, in its augmentation arm, in validation macro-F1: the paired 95 % interval over seeds lies above zero', 'paired 95 % t-interval')
def _(r): d, lo, hi = r['probe_gap']; return lo > 0, interval(d, lo, hi) + ' (the chosen strategy minus feature extraction)'

@claim('training-strategies-tied', 'no strategy that trains the backbone, in the best cell\'s augmentation arm, is below the best by a Welch t-test (p < 0.05)', 'Welch t-test against each')
def _(r):
    p = [x[1] for x in r['strategy_rivals'].values()]
    if not p: raise KeyError('no rivals')
    return all(not x < ALPHA for x in p), (f'smallest Welch {p_words(min(p))}' if np.isfinite(min(p)) else 'one seed each: no test')

def _sign(up, down, words) -> tuple:
    "Sign test of `up` against `down` paired comparisons: (p, evidence)"
    p = sign_test(up, up + down)
    return p, f'{up} of {up + down} {words}, sign test {p_words(p)}'

@claim('augmentation-lowers', 'the augmented arm has a lower validation macro-F1 than the unaugmented one in most (strategy, seed) pairs, by a sign test (p < 0.05)', 'sign test over paired seeds')
def _(r): a = r['aug_pairs']; p, words = _sign(a['lower'], a['higher'], 'pairs lower'); return a['lower'] > a['higher'] and p < ALPHA, words

@claim('augmentation-raises', 'the augmented arm has a higher validation macro-F1 than the unaugmented one in most (strategy, seed) pairs, by a sign test (p < 0.05)', 'sign test over paired seeds')
def _(r): a = r['aug_pairs']; p, words = _sign(a['higher'], a['lower'], 'pairs higher'); return a['higher'] > a['lower'] and p < ALPHA, words

@claim('augmented-still-improving', 'at least half of the augmented strategy runs reach their lowest validation loss in the last two epochs', 'a count of runs')
def _(r): return r['aug_at_cap'] >= 0.5

@claim('unaugmented-overfit-in-loss', 'every unaugmented run that trains the backbone ends with validation loss more than 10 % above its minimum while training loss fell, and no augmented run does', 'a count of runs')
def _(r): return r['overfit_none'] == 1 and r['overfit_aug'] == 0

@claim('f1-rises-after-loss-minimum', 'in unaugmented runs that train the backbone, validation macro-F1 at the last epoch is above its value at the epoch of lowest validation loss, by a sign test over runs (p < 0.05)', 'sign test over runs')
def _(r): a = r['f1_after_loss_min']; p, words = _sign(a['up'], a['down'], 'runs higher'); return a['up'] > a['down'] and p < ALPHA, words

@claim('valid-test-disagree', 'the best strategies cell on validation is not the best on test', 'a ranking of means')
def _(r): return r['best_strategy_valid'] != r['best_strategy_test']
