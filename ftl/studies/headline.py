"The headline model: the best cell on validation, trained once more at the headline size on each task, tested with and without TTA"
from __future__ import annotations
import inspect
from dataclasses import replace
import numpy as np, pandas as pd
from ..metrics import METRICS, scores, columns
from ..datasets import load_card, tasks_of
from ..models import get_arch
from ..config import Config
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

HEADLINE = dict(size=224, tta=True)  # full resolution for the backbones' pretraining; every seed of the preset
SETTINGS = {'tiny': dict(size=48)}

def settings(preset: str) -> dict: return {**HEADLINE, **SETTINGS.get(preset, {})}

def regroup(probs: np.ndarray, targets: np.ndarray, vocab: list, rule: dict) -> tuple:
    "Probabilities and targets of a derived task: each new class's probability is the sum of its classes' (`rule`)"
    groups = [[vocab.index(c) for c in cs] for cs in rule.values()]
    new = np.zeros(len(vocab), int)
    for j, g in enumerate(groups): new[g] = j
    return np.stack([probs[:, g].sum(1) for g in groups], 1), new[targets]

def _scores(probs, targets, split) -> dict:
    return {f'{split}_{k}': x for k, x in scores(targets, probs.argmax(1), np.arange(probs.shape[1])).items()}

def headline_scores(df: pd.DataFrame, tasks: list) -> pd.DataFrame:
    """Per task (the dataset's own, then each derived task of its card, scored from the same models' probabilities): every
    seed's validation and test scores, and the ensemble's (mean of the seeds' probabilities) where every seed kept them"""
    rows = []
    for task in [None, *tasks]:
        runs = []
        for r in df.sort_values('seed').record:
            preds = {sp: (np.array(r.predictions[sp]['probs']), np.array(r.predictions[sp]['targets'])) for sp in ('valid', 'test')} if r.predictions else None
            if preds and task: preds = {sp: regroup(*pt, r.vocab, task.rule) for sp, pt in preds.items()}
            if preds: runs.append(preds)
            own = {f'{sp}_{m}': x[m] for sp, x in (('valid', r.best), ('test', r.test), ('tta', r.test_tta or {})) for m in METRICS if m in x}
            row = {k: v for sp, pt in (preds or {}).items() for k, v in _scores(*pt, sp).items()} if task else own
            if row or not task: rows.append(dict(task=task.name if task else '', run=f"seed {r.config['seed']}", seed=r.config['seed'], **row))
        if len(runs) == len(df) > 1:
            mean = {sp: (np.mean([p[sp][0] for p in runs], 0), runs[0][sp][1]) for sp in ('valid', 'test')}
            rows.append(dict(task=task.name if task else '', run='ensemble', seed=-1, **{k: v for sp, pt in mean.items() for k, v in _scores(*pt, sp).items()}))
    return pd.DataFrame(rows)

def _card_tasks(dataset: str) -> list:
    "The derived tasks the dataset's card defines (none without a card)"
    card = load_card(dataset)
    return [card.task(n.rsplit('#', 1)[-1].removeprefix(f'{dataset}-')) for n in tasks_of(dataset)]

def _headline_outputs(study, df):
    cols = ['dataset', 'arch', 'strategy', 'augment', 'class_weights', 'size', 'epochs', 'seed', *columns('valid'), *columns('test'),
            *columns('tta'), 'train_seconds']
    tables.write_table(df[cols], study.layout.tables/'headline_table')
    tables.write_table(headline_scores(df, _card_tasks(study.dataset)), study.layout.tables/'headline_scores')

@register('headline', export=True, outputs=_headline_outputs, values=values, title='The headline models', order=70)
def headline(study: Study) -> list:
    """The headline model: the best cell on validation among architectures, strategies and imbalance (a backbone too costly
    for the grids can still win), trained at full resolution once per seed of the preset; tested alone, with TTA and as an
    ensemble; the derived tasks of the dataset's card scored from its probabilities"""
    if not suite_records('strategies', study): raise UserError(f"No strategies records for preset {study.preset!r}: run --suite strategies first")
    best = best_record(study, suites=('architectures', 'strategies', 'imbalance'))
    m, size = get_arch(best.config['arch']).size_multiple, settings(study.preset)['size']
    return [replace(Config(**best.config), size=int(round(size/m))*m, tta=settings(study.preset)['tta'], seed=s).validate() for s in study.seeds]

@claim('tta-helps-none', 'test-time augmentation raises the test macro-F1 of no headline model', 'one run per task: no test')
def _(r): return all(g <= 0 for g in r['tta_gain'].values()), 'one run per task: no test of seed noise'

@claim('headline-at-native-size', 'the headline models are trained at the native image size or larger', 'a fact of the sizes')
def _(r): return r['headline_px'] >= r['native_px']
