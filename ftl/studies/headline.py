"The headline model: the best cell on validation, trained once more at the headline size on each task, tested with and without TTA"
from __future__ import annotations
from dataclasses import replace
import numpy as np, pandas as pd
from ..metrics import METRICS, scores, columns
from ..datasets import load_card, tasks_of
from ..models import get_arch
from ..config import Config
from ..records import cell_key
from ..errors import UserError
from ..runner import Study, register, suite_records
from .levers import headline_record
from ..prose import num, pm, title, claim
from .. import tables

def _task_name(task, data) -> str:
    "How the report names a task: the dataset's own classes, or the card's derived task"
    return f"all {len(data['classes'])} classes" if task is None else task.name

def values(v, raw, frames, lay, p):
    """The headline model: its seeds' test scores (mean ± std) and their ensemble's, on the dataset's own classes and on each
    task its card derives, scored from the same probabilities; TTA on the dataset's own classes"""
    h = frames.get('headline', pd.DataFrame())
    if not len(h): return
    from ..datasets import load_card
    card = load_card(h.dataset.iloc[0]) if not v['data']['card']['measured_only'] else None
    tasks = [t for t in (card.tasks if card else []) if not t.retired]
    sc = headline_scores(h, tasks)
    rows, table_rows = [], []
    for tname, g in sc.groupby('task', sort=False):
        task = next((t for t in tasks if t.name == tname), None)
        seeds, ens = g[g.run != 'ensemble'], g[g.run == 'ensemble']
        ms = lambda col: pm(seeds[col].mean(), seeds[col].std(ddof=1) if len(seeds) > 1 else np.nan)
        e = ens.iloc[0] if len(ens) else None
        use_ens = quoted(g) == 'ensemble'
        rows.append(dict(task=_task_name(task, v['data']), description=task.description if task else '', main=task is None,
                         seeds=num(len(seeds)), accuracy=ms('test_accuracy'), f1=ms('test_macro_f1'),
                         ens_accuracy=num(e.test_accuracy) if e is not None else '', ens_f1=num(e.test_macro_f1) if e is not None else '',
                         ensemble=e is not None, ens_chosen=use_ens,
                         tta_accuracy=ms('tta_accuracy') if task is None and 'tta_accuracy' in seeds and seeds.tta_accuracy.notna().any() else '',
                         tta_f1=ms('tta_macro_f1') if task is None and 'tta_macro_f1' in seeds and seeds.tta_macro_f1.notna().any() else ''))
        for label, r in [*((f'mean of {len(seeds)} seeds', None),), *((('ensemble', e),) if e is not None else ())]:
            get = (lambda c: ms(c)) if r is None else (lambda c, r=r: num(r[c]))
            table_rows.append([rows[-1]['task'], label, get('valid_macro_f1'), get('test_accuracy'), get('test_macro_f1')])
        raw.setdefault('headline_tasks', {})[frozenset(task.rule) if task else frozenset(v['data']['classes'])] = dict(
            accuracy=(e.test_accuracy if use_ens else seeds.test_accuracy.mean()), macro_f1=(e.test_macro_f1 if use_ens else seeds.test_macro_f1.mean()),
            n=int(h.record.iloc[0].n_test), model=f"headline {'ensemble' if use_ens else 'mean of seeds'}, {title(h.arch.iloc[0])} at {h['size'].iloc[0]} px")
    r0 = h.iloc[0]
    v['headline_other'] = other_precisions(h, lay.results/'headline')
    v['headline'] = dict(tasks=rows, arch=title(r0.arch), strategy=r0.strategy, augment=r0.augment, size=num(r0['size']),
                         seeds=num(len(h)), minutes=num(h.train_seconds.mean()/60, 0))
    v['headline_table'] = dict(headers=['task', 'model', 'valid macro-F1', 'test accuracy', 'test macro-F1'], rows=table_rows)
    raw['tta_gain'] = {int(r.seed): r.tta_macro_f1 - r.test_macro_f1 for _, r in h.iterrows() if pd.notna(r.tta_macro_f1)}
    raw['headline_px'] = int(h['size'].max())
    tta = [r.record.hyperparams['tta'] for _, r in h.iterrows() if r.record.hyperparams.get('tta')]
    if tta: v['headline_tta'] = tta_words(tta[0])

def other_precisions(h: pd.DataFrame, folder) -> list:
    "Runs of the headline cell recorded in another precision (not replicates: disclosed beside them), with their scores"
    from ..records import read_records
    same = lambda r: cell_key(r, without=('precision',))  # the same config, seed included, in any precision
    mine, keys = {same(r) for r in h.record}, set(h.key)
    return [dict(seed=num(r.config['seed']), precision=r.hyperparams['precision'], valid=num(r.best['macro_f1']),
                 accuracy=num(r.test['accuracy']), f1=num(r.test['macro_f1']))
            for r in read_records(folder) if r.key not in keys and same(r) in mine]

def quoted(g: pd.DataFrame) -> str:
    "The form of the headline quoted for one task (its rows of `headline_scores`): the ensemble where its validation macro-F1 is at least the seeds' mean, else the seeds' mean; test scores play no part"
    seeds, ens = g[g.run != 'ensemble'], g[g.run == 'ensemble']
    return 'ensemble' if len(ens) and ens.valid_macro_f1.iloc[0] >= seeds.valid_macro_f1.mean() else 'seeds'

def tta_words(aug: dict) -> dict:
    "What fastai's `Learner.tta` does with the run's augmentation, its view count and blend weight read from its signature"
    import inspect
    from fastai.learner import Learner
    d = {k: p.default for k, p in inspect.signature(Learner.tta).parameters.items()}
    return dict(views=num(d['n']), augmentation=aug['description'], weight=num(1 - d['beta'], 2), plain=num(d['beta'], 2))

HEADLINE = dict(size=224, tta=True)  # full resolution for the backbones' pretraining; every seed of the preset
SETTINGS = {'tiny': dict(size=48)}

def settings(preset: str) -> dict: return {**HEADLINE, **SETTINGS.get(preset, {})}

def regroup(probs: np.ndarray, targets: np.ndarray, vocab: list, task) -> tuple:
    "Probabilities and targets of a derived task: each new class's probability is the sum of its classes' (`task.rule`)"
    new = np.array(task.new_index(vocab))
    return np.stack([probs[:, new == j].sum(1) for j in range(len(task.rule))], 1), new[targets]

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
            if preds and task: preds = {sp: regroup(*pt, r.vocab, task) for sp, pt in preds.items()}
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
    """The headline model: the best cell on validation among architectures, strategies and imbalance (a backbone too
    costly for the grids can still win), with a lever only where it beats that cell by more than one standard error, trained at full resolution once per seed of the preset; tested alone, with TTA and as an
    ensemble; the derived tasks of the dataset's card scored from its probabilities"""
    if not suite_records('strategies', study): raise UserError(f"No strategies records for preset {study.preset!r}: run --suite strategies first")
    best = headline_record(study)
    m, size = get_arch(best.config['arch']).size_multiple, settings(study.preset)['size']
    return [replace(Config(**best.config), size=int(round(size/m))*m, tta=settings(study.preset)['tta'], seed=s).validate() for s in study.seeds]

@claim('tta-helps-none', 'test-time augmentation raises the test macro-F1 of no headline seed', 'a count over seeds, no test')
def _(r): return all(g <= 0 for g in r['tta_gain'].values()), f"TTA minus plain test macro-F1 per seed: {', '.join(f'{g:+.3f}' for g in r['tta_gain'].values())}"

@claim('headline-at-native-size', 'the headline models are trained at the native image size or larger', 'a fact of the sizes')
def _(r): return r['headline_px'] >= r['native_px']
