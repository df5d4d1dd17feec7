"The committed study's choices, recomputed from its records' validation numbers alone"
import numpy as np, pandas as pd, pytest
import ftl.studies
from ftl.runner import Study, suite_records, complete_records
from ftl.records import records_frame
from ftl.studies.headline import quoted

STUDY = Study(preset='study')
GRIDS = ('architectures', 'strategies', 'imbalance')
CELL = ['arch', 'pretrained', 'strategy', 'augment', 'mixup', 'head', 'fraction', 'epochs', 'freeze_epochs', 'lr', 'bs',
        'patience', 'monitor', 'class_weights', 'loss', 'size', 'precision']

def test_headline_is_the_best_grid_cell_or_a_lever_beyond_one_standard_error_on_validation():
    heads = records_frame(suite_records('headline', STUDY))
    assert len(heads), 'no committed headline records'
    pool = records_frame([r for s in GRIDS for r in complete_records(s, STUDY)]).drop_duplicates('key')
    means = pool.groupby(CELL, dropna=False).valid_macro_f1.mean()  # pandas over the records, not ftl's chooser
    best = dict(zip(CELL, means.idxmax()))
    base = pool[(pool[CELL].fillna('-') == pd.Series(best).fillna('-')).all(axis=1)].set_index('seed').valid_macro_f1
    levers = records_frame(complete_records('levers', STUDY))
    if len(levers):  # a lever replaces the best cell when its mean paired gain exceeds one standard error of that gain
        gains = {cell: (g.set_index('seed').valid_macro_f1 - base).dropna() for cell, g in levers.groupby(CELL, dropna=False)}
        beyond = {cell: d.mean() for cell, d in gains.items() if d.mean() > d.std()/np.sqrt(len(d))}
        if beyond: best = dict(zip(CELL, max(beyond, key=beyond.get)))
    for _, h in heads.iterrows():
        assert {k: h[k] for k in CELL if k != 'size'} == {k: v for k, v in best.items() if k != 'size'}

def test_quoted_form_of_the_headline_is_chosen_on_validation_not_test():
    row = lambda run, v, t: dict(task='', run=run, valid_macro_f1=v, test_macro_f1=t)
    seeds = [row('seed 0', 0.60, 0.60), row('seed 1', 0.62, 0.61)]
    assert quoted(pd.DataFrame([*seeds, row('ensemble', 0.60, 0.70)])) == 'seeds'      # better on test, worse on validation
    assert quoted(pd.DataFrame([*seeds, row('ensemble', 0.63, 0.55)])) == 'ensemble'   # worse on test, better on validation
    assert quoted(pd.DataFrame(seeds)) == 'seeds'
