"The headline model: the best cell on validation, trained once more at the headline size on each task, tested with and without TTA"
from __future__ import annotations
import inspect
from dataclasses import replace
import pandas as pd
from ..models import get_arch
from ..config import Config
from ..data import derived_datasets
from ..errors import UserError
from ..runner import Study, register, suite_records
from ..choices import best_record
from ..prose import num, pct, table, title, claim
from .. import tables

METRIC_NAMES = dict(test_accuracy='accuracy', test_macro_f1='macro-F1')

def task_words(vocab: list, data: dict) -> dict:
    "A run's task from the classes it predicts: the dataset's own, or the dataset card's task with those classes"
    if list(vocab) == list(data['classes']): return dict(name=f'all {len(vocab)} classes', description='', main=True)
    t = next((t for t in data['card']['tasks'] if set(t['rule']) == set(vocab)), None)
    return dict(name=t['name'], description=t['description'], main=False) if t else dict(name=' vs '.join(vocab), description='', main=False)

def values(v, raw, frames, lay, p):
    "The headline models: the best recipe trained once more at the headline size on each task, with and without TTA"
    h = frames.get('headline', pd.DataFrame())
    if not len(h): return
    task = {r.dataset: task_words(r.record.vocab, v['data']) for _, r in h.iterrows()}
    h = h.sort_values('dataset', key=lambda d: d.map(lambda x: not task[x]['main']), kind='stable')  # the dataset's own classes first
    goals = {r.dataset: {m: (g, r[m] - g) for m, g in p.get('goals', {}).get(r.dataset, {}).items()} for _, r in h.iterrows()}
    v['headline'] = [dict(
        task=task[r.dataset]['name'], description=task[r.dataset]['description'], main=task[r.dataset]['main'],
        accuracy=pct(r.test_accuracy), f1=num(r.test_macro_f1), tta_accuracy=pct(r.tta_accuracy), tta_f1=num(r.tta_macro_f1),
        size=num(r['size']), arch=title(r.arch), strategy=r.strategy, augment=r.augment, minutes=num(r.train_seconds/60, 0),
        goals=bool(goals[r.dataset]), met=all(d >= 0 for _, d in goals[r.dataset].values()),
        short=[f"{METRIC_NAMES[m]} by {abs(d):.3f}" for m, (_, d) in goals[r.dataset].items() if d < 0]) for _, r in h.iterrows()]
    goal_words = lambda d: ', '.join(f"{METRIC_NAMES[m]} ≥ {g:.2f}" for m, (g, _) in goals[d].items()) or '—'
    cols = {'task': lambda r: task[r.dataset]['name'], 'test accuracy': lambda r: num(r.test_accuracy), 'test macro-F1': lambda r: num(r.test_macro_f1),
            'with TTA: accuracy': lambda r: num(r.tta_accuracy), 'macro-F1': lambda r: num(r.tta_macro_f1), 'goal': lambda r: goal_words(r.dataset)}
    if not any(goals.values()): del cols['goal']
    v['headline_table'] = table(h, cols)
    raw['headline'] = {r.dataset: dict(vocab=list(r.record.vocab), accuracy=r.test_accuracy, macro_f1=r.test_macro_f1, n_test=r.record.n_test,
                                       size=int(r['size'])) for _, r in h.iterrows()}
    raw['tta_gain'] = {r.dataset: r.tta_macro_f1 - r.test_macro_f1 for _, r in h.iterrows()}
    raw['headline_px'] = int(h['size'].max())
    tta = [r.record.hyperparams['tta'] for _, r in h.iterrows() if r.record.hyperparams.get('tta')]
    if tta: v['headline_tta'] = tta_words(tta[0])

def tta_words(aug: dict) -> dict:
    "What fastai's `Learner.tta` does with the run's augmentation, its view count and blend weight read from its signature"
    import inspect
    from fastai.learner import Learner
    d = {k: p.default for k, p in inspect.signature(Learner.tta).parameters.items()}
    return dict(views=num(d['n']), augmentation=aug['description'], weight=num(1 - d['beta'], 2), plain=num(d['beta'], 2))

HEADLINE = dict(size=224, tta=True)  # trained on the dataset and on every task derived from its labels (data.derived_datasets)

def _headline_outputs(study, df):
    cols = ['dataset', 'arch', 'strategy', 'augment', 'class_weights', 'size', 'epochs', 'valid_accuracy', 'valid_macro_f1',
            'test_accuracy', 'test_macro_f1', 'tta_accuracy', 'tta_macro_f1', 'train_seconds']
    tables.write_table(df[cols], study.layout.tables/'headline_table')

@register('headline', export=True, outputs=_headline_outputs, values=values, title='The headline models')
def headline(study: Study) -> list:
    """The headline model: the best cell on validation (architectures, strategies, imbalance: a backbone too costly for the
    grids can still win), trained once more at the headline size on the dataset and on each task derived from its labels,
    tested with and without TTA"""
    if not suite_records('strategies', study): raise UserError(f"No strategies records for preset {study.preset!r}: run --suite strategies first")
    best = best_record(study, suites=('architectures', 'strategies', 'imbalance'))
    m = get_arch(best.config['arch']).size_multiple
    return [replace(Config(**best.config), dataset=d, size=int(round(HEADLINE['size']/m))*m, tta=HEADLINE['tta'], seed=0).validate()
            for d in (study.dataset, *derived_datasets(study.dataset))]

@claim('tta-helps-none', 'test-time augmentation raises the test macro-F1 of no headline model', 'one run per task: no test')
def _(r): return all(g <= 0 for g in r['tta_gain'].values()), 'one run per task: no test of seed noise'

@claim('headline-at-native-size', 'the headline models are trained at the native image size or larger', 'a fact of the sizes')
def _(r): return r['headline_px'] >= r['native_px']
