"Class imbalance: the best strategies cell with and without a class-weighted loss"
from __future__ import annotations
from dataclasses import replace
import pandas as pd
from ..config import Config
from ..runner import Study, register
from ..choices import best_record
from ..prose import num, pm, table, title, claim, interval
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
        runs = lambda w, m: i[i.class_weights == w].set_index('seed')[m]
        raw['class_weights_valid'] = tables.paired_diff(runs(True, 'valid_macro_f1'), runs(False, 'valid_macro_f1'))
        gain, test_gain = (float(t.loc[True, f'{m}_mean'] - t.loc[False, f'{m}_mean']) for m in ('valid_macro_f1', 'test_macro_f1'))
        v['class_weights'] = dict(gain=f'{gain:+.3f}', adopted=gain > 0, test_gain=f'{test_gain:+.3f}',
                                  valid_ci=interval(*raw['class_weights_valid']),
                                  recipe=f"{i.strategy.iloc[0]}, augmentation {i.augment.iloc[0]}", arch=title(i.arch.iloc[0]))

def _imbalance_outputs(study, df):
    tables.write_table(tables.seed_summary(df, ['arch', 'strategy', 'augment', 'class_weights', 'size']), study.layout.tables/'imbalance_table')

@register('imbalance', outputs=_imbalance_outputs, values=values, title='Class imbalance', order=40)
def imbalance(study: Study) -> list:
    "Class imbalance: the best strategies configuration (by validation) with and without a class-weighted loss, every seed"
    best = best_record(study, suites=('strategies',))
    return [replace(Config(**best.config), class_weights=w, seed=s).validate() for w in (False, True) for s in study.seeds]

@claim('class-weights-help', 'a class-weighted loss raises validation macro-F1: the paired 95 % interval over seeds lies above zero', 'paired 95 % t-interval')
def _(r): d, lo, hi = r['class_weights_valid']; return lo > 0, interval(d, lo, hi)

@claim('class-weights-hurt', 'a class-weighted loss lowers validation macro-F1: the paired 95 % interval over seeds lies below zero', 'paired 95 % t-interval')
def _(r): d, lo, hi = r['class_weights_valid']; return hi < 0, interval(d, lo, hi)
