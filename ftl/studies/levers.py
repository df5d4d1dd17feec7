"""Levers toward the study's goals: changes to the best cell, each trained at the study's size on every seed and measured on
validation against the best cell itself; the headline adopts a lever only when its paired gain on validation exceeds one
standard error (`headline_record`)"""
from __future__ import annotations
import json
from dataclasses import replace
from functools import lru_cache
import numpy as np, pandas as pd
from scipy.ndimage import uniform_filter1d
from ..config import Config
from ..data import load_source, dataset_id
from ..datasets import card_of
from ..strategies import describe_augmentation
from ..runner import Study, register, suite_records, complete_records
from ..records import cell_key, CONFIG_ADDED
from ..choices import best_record, best_cell
from ..prose import num, pm, table, title, claim, interval
from ..metrics import PRIMARY
from .. import tables

LINE_RATIO = 4.0   # an image's lines run one way when their profile energy that way is this many times the other's
AGREE = 0.99       # the share of oriented images that must agree before flips alone are the augmentation that fits

def orientation_census(images) -> dict:
    """How many images have their narrow straight structures (printed lines, rulings, seams) running horizontally, vertically or
    neither: the energy of narrow dips in the central crop's row profile against its column profile"""
    g = np.asarray(images, np.float32)
    g = g.mean(-1) if g.ndim == 4 else g
    h, w = g.shape[1:3]
    c = g[:, h//8:h - h//8, w//8:w - w//8]  # the centre: frame edges and dark corners are no lines
    k = max(3, c.shape[1]//8) | 1
    narrow = lambda p: ((p - uniform_filter1d(p, k, axis=1, mode='nearest'))**2).sum(1) + 1e-9
    ratio = narrow(c.mean(2))/narrow(c.mean(1))
    return dict(horizontal=int((ratio > LINE_RATIO).sum()), vertical=int((ratio < 1/LINE_RATIO).sum()),
                none=int(((ratio <= LINE_RATIO) & (ratio >= 1/LINE_RATIO)).sum()))

def fitting_augmentation(census: dict) -> str:
    "'flips' when the oriented images agree (a quarter-turn would show a view the data never has), else 'dihedral'"
    oriented = census['horizontal'] + census['vertical']
    return 'flips' if oriented and max(census['horizontal'], census['vertical']) >= AGREE*oriented else 'dihedral'

@lru_cache(maxsize=8)
def _census_of(dataset: str, size: int, ident: str) -> dict:
    "The census of a dataset at `size`, once per process and content (`ident`: `data.dataset_id`, so an edited folder is counted anew)"
    return orientation_census(load_source(dataset, size).images)

def census(study: Study) -> dict:
    "The orientation census of the study's dataset at its preset's size"
    return _census_of(study.dataset, study.settings['size'], dataset_id(study.dataset))

# name -> the Config fields it changes, from the best cell's config and the dataset (None: it does not apply to this dataset)
def _fitting(c, study) -> dict: return dict(augment=fitting_augmentation(census(study)))

LEVERS = {
    'augmentation that fits, twice the epochs': lambda c, study: dict(_fitting(c, study), epochs=2*c.epochs),
    'ordinal soft labels': lambda c, study: dict(loss='ordinal') if card_of(study.dataset).ordered else None,
    'augmentation that fits': _fitting,
}
SETTINGS = {'study': ('ordinal soft labels', 'augmentation that fits, twice the epochs'),  # the levers a preset tries, cheapest first
            'tiny': ('ordinal soft labels', 'augmentation that fits')}  # a first look: its schedule, not twice

GRIDS = ('architectures', 'strategies', 'imbalance')  # the suites whose best cell the levers change

def base_record(study: Study):
    "The best cell's first run among the grids the levers build on (the levers themselves excluded)"
    return best_record(study, suites=GRIDS)

def lever_gains(base: list, levers: list) -> dict:
    """Lever cell -> (mean, standard error) of its validation macro-F1 minus the best cell's, paired by seed, from the
    records of the best cell (`base`) and of the levers"""
    valid = lambda rs: pd.Series({r.config['seed']: r.best[PRIMARY] for r in rs})
    cells = {}
    for r in levers: cells.setdefault(cell_key(r), []).append(r)
    d = {c: (valid(rs) - valid(base)).dropna() for c, rs in cells.items()}
    return {c: (float(x.mean()), float(x.std(ddof=1)/np.sqrt(len(x))) if len(x) > 1 else np.inf) for c, x in d.items()}

def adopted(gains: dict):
    "Of {lever: (mean gain, standard error)}, the lever the headline adopts: the largest gain beyond its standard error, else None"
    beats = {k: g for k, (g, se) in gains.items() if g > se}
    return max(beats, key=beats.get) if beats else None

def headline_record(study: Study):
    """The run the headline trains again: the best cell's first run, or, once every lever has run, the lever whose mean
    validation gain over the best cell, paired by seed, exceeds one standard error of that gain (the largest such gain);
    a lever inside seed noise is not adopted, as a larger backbone inside one standard error is not chosen"""
    base, recs = best_cell([r for s in GRIDS for r in suite_records(s, study)]), complete_records('levers', study)
    won = adopted(lever_gains(base, recs))
    return min((r for r in (recs if won else base) if not won or cell_key(r) == won), key=lambda r: r.config['seed'])

def lever_cells(study: Study) -> dict:
    "Lever name -> the Config fields it changes in the best cell, for the levers of the preset that apply to the dataset"
    base = Config(**base_record(study).config)
    return {n: ch for n in SETTINGS.get(study.preset, ()) if (ch := LEVERS[n](base, study)) is not None}

def _levers_outputs(study, df):
    "What the report needs besides the records: each lever's changes and the orientation census the augmentation was chosen by"
    counts = census(study)
    info = dict(census=counts, arm=fitting_augmentation(counts), base=base_record(study).key, levers=lever_cells(study))
    (study.layout.tables/'levers.json').write_text(json.dumps(info, indent=1) + '\n')

def _changes(c: dict) -> str:
    "What a run's augmentation, schedule and loss are, in words"
    c = {**CONFIG_ADDED, **c}  # a record older than a field ran with its default
    return f"augmentation {c['augment']}, {c['epochs']} epochs, loss {c['loss']}"

def values(v, raw, frames, lay, p):
    "Each lever's validation macro-F1 against the best cell's, paired over seeds, and the orientation census behind the augmentation"
    lv, info = frames.get('levers', pd.DataFrame()), lay.tables/'levers.json'
    if not len(lv) or not info.exists(): return
    info = json.loads(info.read_text())
    pool = pd.concat([frames[s] for s in ('architectures', 'strategies', 'imbalance') if s in frames])
    base = pool[pool.key.isin({r.key for r in best_cell(pool.record)})].drop_duplicates('key')
    if info['base'] not in set(base.key): return  # the levers were built on another cell than the grids now choose: rerun them
    b, rows, gains, raw['levers'] = base.record.iloc[0].config, [], {}, {}
    row = lambda name, g, d: dict(lever=name, runs=_changes(g.record.iloc[0].config), seeds=num(len(g)), gain=d,
                                  valid=pm(g.valid_macro_f1.mean(), g.valid_macro_f1.std()), test=pm(g.test_macro_f1.mean(), g.test_macro_f1.std()))
    rows.append(row('none (the best configuration)', base, ''))
    for name, ch in info['levers'].items():
        g = lv[np.logical_and.reduce([lv[k] == x for k, x in ch.items()])]
        if not len(g): continue
        raw['levers'][name] = tables.paired_diff(g.set_index('seed').valid_macro_f1, base.set_index('seed').valid_macro_f1)
        rows.append(row(name, g, interval(*raw['levers'][name])))
        (gains[name],) = lever_gains(list(base.record), list(g.record)).values()
    won, top = adopted(gains), max(gains, key=lambda n: gains[n][0], default=None)  # the headline's rule, and the best mean alone
    v['lever_rule'] = [dict(lever=n, gain=f'{g:+.3f}', se=f'{se:.3f}', adopted=n == won, best_mean=n == top and g > 0)
                       for n, (g, se) in gains.items()]
    v['levers'] = table(pd.DataFrame(rows), {'lever': lambda r: r.lever, 'what runs': lambda r: r.runs, 'seeds': lambda r: r.seeds,
                                             'valid macro-F1': lambda r: r.valid, 'change on valid [95 % CI]': lambda r: r.gain,
                                             'test macro-F1': lambda r: r.test})
    c = info['census']
    v['levers_base'] = dict(arch=title(b['arch']), strategy=b['strategy'], size=num(b['size']), augment=b['augment'], epochs=num(b['epochs']))
    v['orientation'] = dict(**{k: num(n) for k, n in c.items()}, n=num(sum(c.values())), arm=info['arm'], ratio=num(LINE_RATIO, 0),
                            agree=f'{100*AGREE:.0f} %', words=describe_augmentation(info['arm'])['description'])

@register('levers', order=65, outputs=_levers_outputs, values=values, title='Levers toward the goals')
def levers(study: Study) -> list:
    """Levers toward the goals: the best cell with one change each (augmentation fitting the images' orientation with a
    longer schedule; an ordinal loss for ordered classes), every seed, judged on validation against the best cell"""
    cells = lever_cells(study)
    if not cells: return []
    base = Config(**base_record(study).config)
    return [replace(base, **ch, seed=s).validate() for ch in cells.values() for s in study.seeds]

@claim('a-lever-helps', "some lever raises validation macro-F1 over the best cell: its paired 95 % interval over seeds lies above zero", 'paired 95 % t-interval')
def _(r): return any(lo > 0 for _, lo, _ in r['levers'].values()), '; '.join(f'{n}: {interval(*d)}' for n, d in r['levers'].items())

@claim('a-lever-hurts', "some lever lowers validation macro-F1 below the best cell's: its paired 95 % interval over seeds lies below zero", 'paired 95 % t-interval')
def _(r): return any(hi < 0 for _, _, hi in r['levers'].values()), '; '.join(f'{n}: {interval(*d)}' for n, d in r['levers'].items())
