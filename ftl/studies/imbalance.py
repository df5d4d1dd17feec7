"Class imbalance: the best strategies cell with and without a class-weighted loss"
from __future__ import annotations
from dataclasses import replace
import pandas as pd
from ..config import Config
from ..runner import Study, register
from ..choices import best_record
from ..prose import num, pm, table, title
from .. import tables


def values(v, raw, frames, lay, p):
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

def _imbalance_outputs(study, df):
    tables.write_table(tables.seed_summary(df, ['arch', 'strategy', 'augment', 'class_weights', 'size']), study.layout.tables/'imbalance_table')

@register('imbalance', outputs=_imbalance_outputs, values=values, order=40)
def imbalance(study: Study) -> list:
    "Class imbalance: the best strategies configuration (by validation) with and without a class-weighted loss, every seed"
    best = best_record(study, suites=('strategies',))
    return [replace(Config(**best.config), class_weights=w, seed=s).validate() for w in (False, True) for s in study.seeds]
