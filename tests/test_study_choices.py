"The committed study's choices, recomputed from its records' validation numbers alone"
import numpy as np, pandas as pd, pytest
import ftl.studies
from ftl.runner import Study, suite_records, complete_records
from ftl.records import records_frame
from ftl.studies.headline import quoted

STUDY = Study(preset='study')
POOL = ('architectures', 'strategies', 'imbalance', 'levers')
CELL = ['arch', 'pretrained', 'strategy', 'augment', 'mixup', 'head', 'fraction', 'epochs', 'freeze_epochs', 'lr', 'bs',
        'patience', 'monitor', 'class_weights', 'loss', 'size', 'precision']

def test_headline_is_the_cell_with_the_best_mean_validation_macro_f1():
    heads = records_frame(suite_records('headline', STUDY))
    assert len(heads), 'no committed headline records'
    pool = records_frame([r for s in POOL for r in complete_records(s, STUDY)]).drop_duplicates('key')
    means = pool.groupby(CELL, dropna=False).valid_macro_f1.mean()  # pandas over the records, not ftl's chooser
    best = dict(zip(CELL, means.idxmax()))
    for _, h in heads.iterrows():
        assert {k: h[k] for k in CELL if k != 'size'} == {k: v for k, v in best.items() if k != 'size'}


def test_quoted_form_of_the_headline_is_chosen_on_validation_not_test():
    row = lambda run, v, t: dict(task='', run=run, valid_macro_f1=v, test_macro_f1=t)
    seeds = [row('seed 0', 0.60, 0.60), row('seed 1', 0.62, 0.61)]
    assert quoted(pd.DataFrame([*seeds, row('ensemble', 0.60, 0.70)])) == 'seeds'      # better on test, worse on validation
    assert quoted(pd.DataFrame([*seeds, row('ensemble', 0.63, 0.55)])) == 'ensemble'   # worse on test, better on validation
    assert quoted(pd.DataFrame(seeds)) == 'seeds'
