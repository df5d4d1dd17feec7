"Which way of fine-tuning: every strategy, augmentation off and on, on the grids' backbone; overfitting signals"
from __future__ import annotations
import numpy as np, pandas as pd
from ..models import get_arch
from ..strategies import STRATEGIES
from ..config import strategy_order
from ..records import OVERFIT_RISE
from ..runner import Study, register
from ..choices import best_arch
from ..prose import num, pct, pm, table, title, claim
from .. import tables, figures
from .architectures import _title


def values(v, raw, frames, lay, p):
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

def _strategies_outputs(study, df):
    lay = study.layout
    main = df.arch.value_counts().index[0]  # the suite's architecture; other rows: runs of an earlier choice
    df = tables.in_order(df.assign(other=df.arch != main), dict(other=[False], arch=sorted(df.arch.unique()), **strategy_order(study.settings['augment_arms']), seed=sorted(df.seed.unique())))
    tables.write_table(tables.strategy_table(df), lay.tables/'strategies_table')
    figures.training_curves(list(df.record), _title, lay.figures/'curves_strategies', f"Strategies on {get_arch(main).title}", ncols=5)

@register('strategies', export=True, outputs=_strategies_outputs, values=values, order=30)
def strategies(study: Study) -> list:
    "Which way of fine-tuning: every strategy, augmentation off and on, on the best (or given) architecture at 100 % data"
    arch = study.arch or best_arch(study)
    return [study.config(arch=arch, strategy=st, augment=aug, seed=s)
            for st in STRATEGIES for aug in study.settings['augment_arms'] for s in study.seeds]

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
