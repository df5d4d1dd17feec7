"Dataset cards, shaped like Hugging Face's: a Markdown file whose YAML front matter holds the facts a report needs about a dataset"
from __future__ import annotations
import re
from collections import Counter
from dataclasses import dataclass, field, asdict
from pathlib import Path
import yaml
from PIL import Image
from .errors import DataError, DatasetMissing

__all__ = ['Card', 'Task', 'parse_card', 'measured_card', 'CARDS_DIR']

CARDS_DIR = Path(__file__).parent/'cards'  # the cards ftl ships (package data)
CITATION = ('key', 'authors', 'title', 'venue', 'year')
PUBLISHED = ('key', 'task', 'metric', 'value', 'split', 'model')
GOAL = ('task', 'metric', 'value', 'why')

@dataclass
class Task:
    "A task derived from a dataset: its classes regrouped by `rule` (new class -> list of the dataset's classes)"
    name: str
    description: str
    rule: dict
    reason: str = ''
    retired: str = ''  # why new studies should not use it ('' when they may)
    def new_index(self, classes) -> list:
        "The new class index of each of the dataset's `classes` (in their order) under `rule`"
        new = {c: i for i, cs in enumerate(self.rule.values()) for c in cs}
        return [new[c] for c in classes]

@dataclass
class Card:
    "What is known about a dataset: the card file's fields, or only what could be measured (`measured_only`)"
    pretty_name: str
    description: str = ''
    license: str = ''
    citation: list = field(default_factory=list)
    classes: dict = field(default_factory=dict)  # class name -> meaning, in label order
    domain: str = ''
    split: object = 'official'  # 'official', 'folders', or {'stratified': [train, valid, test], 'seed': int}
    split_note: str = ''  # what the split does not keep apart (groups of images that fall on both sides), in a sentence
    tasks: list = field(default_factory=list)
    published: list = field(default_factory=list)
    goals: list = field(default_factory=list)  # what the study should reach on test: task, metric, value, why
    ordered: bool = False  # the classes are levels of one quantity, in order (an error between neighbours is a near miss)
    text: str = ''  # the prose after the front matter
    path: str = ''
    measured_only: bool = False
    measured: dict = field(default_factory=dict)  # counts per class, image sizes and modes, where measured
    def as_report(self) -> dict:
        "The card as the report reads it: plain data, each published figure naming its citation as `ref`, the split in words"
        split = self.split if isinstance(self.split, str) else \
            f"stratified {' / '.join(f'{x:.0%}' for x in self.split['stratified'])} train / validation / test, seed {self.split['seed']}"
        return dict(asdict(self), split=split, published=[dict(p, ref=p['key']) for p in self.published],
                    tasks=[asdict(t) for t in self.tasks])
    def task(self, name) -> Task:
        "The derived task called `name`, else an error listing the card's tasks"
        for t in self.tasks:
            if t.name == name: return t
        raise DataError(f"The card {self.path or self.pretty_name} defines no task {name!r}; its tasks: {[t.name for t in self.tasks]}")

def _front_matter(path: Path) -> tuple:
    "(YAML mapping, prose) of a Markdown card"
    m = re.match(r'---[ \t]*\n(.*?)^---[ \t]*$\n?(.*)', path.read_text(encoding='utf-8'), re.S | re.M)
    if not m: raise DataError(f"{path}: a dataset card starts with YAML front matter between two '---' lines")
    try: meta = yaml.safe_load(m[1]) or {}
    except yaml.YAMLError as e: raise DataError(f"{path}: the front matter is not valid YAML ({e})") from None
    if not isinstance(meta, dict): raise DataError(f"{path}: the front matter must be a YAML mapping of fields")
    return meta, m[2].strip()

def _need(ok, path, name, what):
    if not ok: raise DataError(f"{path}: field {name!r} must be {what}")

def _records(meta, path, name, keys) -> list:
    "The list of mappings `meta[name]`, each with all of `keys`"
    items = meta.get(name, []) or []
    _need(isinstance(items, list) and all(isinstance(i, dict) for i in items), path, name, 'a list of mappings')
    for i, it in enumerate(items):
        _need(not (miss := [k for k in keys if k not in it]), path, f'{name}[{i}]', f'a mapping with {list(keys)} (missing {miss})')
    return items

def _task(t, i, classes, path) -> Task:
    "A validated `tasks` entry: every class of the dataset in exactly one new class"
    where = f'tasks[{i}]'
    _need(isinstance(t, dict) and {'name', 'description', 'rule'} <= set(t), path, where, 'a mapping with name, description, rule')
    rule = t['rule']
    _need(isinstance(rule, dict) and rule and all(isinstance(v, list) for v in rule.values()), path, f'{where}.rule',
          'a mapping new class -> list of class names')
    used = [c for v in rule.values() for c in v]
    _need(sorted(used) == sorted(classes) and len(set(used)) == len(used), path, f'{where}.rule',
          f'a grouping that uses every class in `classes` once ({list(classes)}), got {used}')
    return Task(str(t['name']), str(t['description']).strip(), {str(k): [str(c) for c in v] for k, v in rule.items()},
                str(t.get('reason', '')).strip(), str(t.get('retired', '') or '').strip())

def _split(s, path):
    "A validated `split`: 'official', 'folders' or {stratified: [3 fractions summing to 1], seed: int}"
    if s in ('official', 'folders'): return s
    ok = isinstance(s, dict) and isinstance(s.get('seed'), int) and isinstance(f := s.get('stratified'), list) and len(f) == 3 \
        and all(isinstance(x, (int, float)) and x > 0 for x in f) and abs(sum(f) - 1) < 1e-6
    _need(ok, path, 'split', "'official', 'folders' or {stratified: [train, valid, test fractions summing to 1], seed: <int>}")
    return dict(stratified=[float(x) for x in s['stratified']], seed=s['seed'])

def parse_card(path) -> Card:
    "The card at `path`, every field checked, with errors that name the field and the file"
    path = Path(path)
    if not path.is_file(): raise DatasetMissing(f"No dataset card at {path}: write one (see {CARDS_DIR/'elpv.md'}) or give another path")
    meta, text = _front_matter(path)
    known = set(Card.__dataclass_fields__) - {'text', 'path', 'measured_only', 'measured'}
    _need(not (extra := sorted(set(meta) - known)), path, extra[0] if extra else '', f'one of {sorted(known)} (unknown field)')
    for name in ('pretty_name', 'description'):
        _need(isinstance(meta.get(name), str) and meta[name].strip(), path, name, 'a non-empty string')
    for name in ('license', 'domain', 'split_note'): _need(isinstance(meta.get(name, ''), str), path, name, 'a string')
    _need(isinstance(meta.get('ordered', False), bool), path, 'ordered', 'true or false')
    classes = meta.get('classes', {}) or {}
    _need(isinstance(classes, dict) and all(isinstance(v, str) for v in classes.values()), path, 'classes',
          'a mapping class name -> meaning, in label order')
    citation, published = _records(meta, path, 'citation', CITATION), _records(meta, path, 'published', PUBLISHED)
    goals = _records(meta, path, 'goals', GOAL)
    keys = {c['key'] for c in citation}
    for i, p in enumerate(published): _need(p['key'] in keys, path, f'published[{i}].key', f'one of the citation keys {sorted(keys)}')
    tasks = meta.get('tasks', []) or []
    _need(isinstance(tasks, list), path, 'tasks', 'a list of tasks')
    _need(not tasks or classes, path, 'classes', 'given when the card defines tasks (the rules group its classes)')
    tasks = [_task(t, i, list(classes), path) for i, t in enumerate(tasks)]
    _need(len({t.name for t in tasks}) == len(tasks), path, 'tasks', 'a list with distinct names')
    return Card(meta['pretty_name'].strip(), ' '.join(meta['description'].split()), meta.get('license', ''), citation,
                {str(k): ' '.join(v.split()) for k, v in classes.items()}, ' '.join(str(meta.get('domain', '')).split()),
                _split(meta.get('split', 'official'), path), ' '.join(str(meta.get('split_note', '')).split()), tasks, published, goals,
                bool(meta.get('ordered', False)), text, str(path))

def measured_card(source) -> Card:
    "A minimal card of what `source` shows: its classes (meanings unknown), counts per class, image sizes and modes"
    files, n = source.info.get('files'), len(source.labels)
    sizes, modes = Counter(), Counter()
    if files is None: sizes[f'{source.images.shape[2]}x{source.images.shape[1]}'], modes[source.mode] = n, n  # as decoded
    else:
        for f in files:
            with Image.open(f) as im: sizes[f'{im.size[0]}x{im.size[1]}'] += 1; modes[im.mode] += 1
    info = source.info
    split = info.get('split_kind', 'official') if 'split_fracs' not in info else \
        dict(stratified=list(info['split_fracs']), seed=info['split_seed'])
    measured = dict(counts=source.counts(), sizes=dict(sizes), modes=dict(modes), read_from='decoded' if files is None else 'files')
    return Card(source.name, classes={c: '' for c in source.classes}, split=split, measured_only=True, measured=measured)
