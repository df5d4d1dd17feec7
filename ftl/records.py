"The run record (one schema, versioned), a plain store of records as JSON files, and the one DataFrame every table uses"
from __future__ import annotations
import json, os, time, warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
import numpy as np, pandas as pd
from .errors import ResultsError
from .files import write_atomic
from .metrics import METRICS, PRIMARY

__all__ = ['SCHEMA_VERSION', 'Record', 'CorruptRecord', 'record_path', 'save_record', 'load_record', 'read_records',
           'find_twin', 'set_aside', 'check_writable', 'cell_key', 'records_frame', 'write_atomic']

SCHEMA_VERSION = 2
CONFIG_ADDED = dict(skip_bad_images=False, loss='cross-entropy')  # Config fields added after records were written: what every older run had

@dataclass
class Record:
    """One finished run. Epochs are counted from 1 everywhere: `history[i]['epoch'] == i + 1`, and `best_epoch` is the
    epoch whose weights were restored (chosen on validation by `config['monitor']`); `best` is its history row"""
    key: str                  # Config.key(): the file name
    config: dict              # asdict(Config)
    vocab: list               # class names in the model's output order
    data_id: str              # content identity of a folder dataset ('' for packaged and official data)
    n_train: int
    n_train_per_class: dict
    n_valid: int
    n_test: int
    normalization: dict       # mean and std the inputs were normalised with
    history: list             # per epoch: epoch, stage (1-based), train_loss, valid_loss, accuracy, macro_f1, lr (per group)
    best_epoch: int
    test: dict                # evaluate.test_metrics of the restored model on the test split
    hyperparams: dict         # what ran, read off the learner and fastai's schedulers (train._hyperparams)
    train_path: str           # 'end-to-end' or 'cached-features'
    train_seconds: float
    arch: dict                # models.Arch of the run
    params: int
    env: dict
    test_tta: dict | None = None          # test metrics with test-time augmentation (config tta)
    predictions: dict | None = field(default=None, metadata=dict(optional=True))  # {'valid'|'test': {'probs': [[per class]], 'targets': [...]}} of the restored model (absent in older records)
    feature_seconds: float | None = None  # cached-feature path: computing or loading the features
    feature_cache_hit: bool | None = None
    reused_from: str | None = None        # suite/file of the identical config this record was copied from
    notes: list = field(default_factory=list)  # what tools changed in a stored record, and why
    version: int = SCHEMA_VERSION
    suite: str | None = field(default=None, metadata=dict(stored=False))  # where it was read from (not stored)
    path: str | None = field(default=None, metadata=dict(stored=False))

    @property
    def best(self) -> dict: return self.history[self.best_epoch - 1]

    def to_dict(self) -> dict:
        "The stored fields (an optional field only when set, so older records round-trip unchanged)"
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get('stored', True)
                and not (f.metadata.get('optional') and getattr(self, f.name) is None)}

    @classmethod
    def from_dict(cls, d: dict, **where) -> 'Record':
        names = {f.name for f in fields(cls)}
        if d.get('version') != SCHEMA_VERSION:
            raise ValueError(f"record schema version {d.get('version')!r}, this ftl reads {SCHEMA_VERSION}: run tools/migrate_records.py")
        if (unknown := set(d) - names): raise ValueError(f"unknown record fields {sorted(unknown)}")
        return cls(**d, **where).validate()

    def validate(self) -> 'Record':
        "Check the record is internally consistent (types, epoch numbering, test counts, class order)"
        errs = []
        if not self.history or [e['epoch'] for e in self.history] != list(range(1, len(self.history) + 1)): errs.append('epochs not 1..n')
        if not 1 <= self.best_epoch <= len(self.history): errs.append(f'best_epoch {self.best_epoch} outside 1..{len(self.history)}')
        cm = np.array(self.test['confusion'])
        if cm.sum() != self.n_test or self.test['classes'] != self.vocab: errs.append('test confusion or classes inconsistent')
        if self.n_train != sum(self.n_train_per_class.values()): errs.append('n_train != sum of n_train_per_class')
        if not all({'train_loss', 'valid_loss', PRIMARY, 'lr', 'stage'} <= set(e) for e in self.history): errs.append('history fields')
        for split, n in (('valid', self.n_valid), ('test', self.n_test)):
            pr = (self.predictions or {}).get(split)
            if pr and (len(pr['probs']) != n or len(pr['targets']) != n): errs.append(f'{split} predictions are not one per image')
        if errs: raise ValueError(f"invalid record {self.key}: {'; '.join(errs)}")
        return self

class CorruptRecord(ValueError): "A record file that cannot be read as a record"

def record_path(results, suite, key) -> Path: return Path(results)/suite/f'{key}.json'

def save_record(record: Record, path) -> Path:
    "Write `record` as JSON to `path` atomically"
    d = record.to_dict() if isinstance(record, Record) else record
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(d, indent=1, default=float)))

def load_record(path) -> Record:
    "The record stored at `path`; `CorruptRecord` naming the file when it cannot be read as one"
    p = Path(path)
    try: return Record.from_dict(json.loads(p.read_text()), suite=p.parent.name, path=str(p))
    except (ValueError, KeyError, TypeError) as e: raise CorruptRecord(f"{p}: {e}") from None

def set_aside(path) -> Path:
    "Move a corrupt record out of the way (`<name>.corrupt-<time>`), so it is kept for inspection and rerun"
    p = Path(path); dest = p.with_name(f'{p.name}.corrupt-{time.strftime("%Y%m%dT%H%M%S")}')
    os.replace(p, dest)
    return dest

def check_writable(folder) -> Path:
    "`folder`, created and proven writable now (before any training), or a `ResultsError` naming it"
    p = Path(folder)
    try:
        p.mkdir(parents=True, exist_ok=True)
        write_atomic(p/'.write-check', lambda tmp: tmp.write_text('ok')).unlink()
    except OSError as e: raise ResultsError(f"Results folder {p} cannot be written ({e.strerror or e}); choose another with --results") from None
    return p

def read_records(folder) -> list:
    "Every record under `folder` (recursively); other JSON files are passed over, a corrupt record is reported by name"
    recs = []
    for p in sorted(Path(folder).rglob('*.json')):
        if p.name.startswith('.tmp-'): continue
        try: d = json.loads(p.read_text())
        except ValueError: warnings.warn(f"skipped corrupt record {p}: not valid JSON"); continue
        if not (isinstance(d, dict) and 'config' in d and 'history' in d): continue  # a table or summary, not a record
        try: recs.append(load_record(p))
        except CorruptRecord as e: warnings.warn(f"skipped corrupt record {e}")
    return recs

def find_twin(results, key, exclude=None) -> Path | None:
    "The record of the same config written by another suite, if any"
    return next((p for p in sorted(Path(results).glob(f'*/{key}.json')) if p != exclude), None)

OVERFIT_RISE = 0.10  # validation loss ending this share above its minimum, while training loss fell, counts as overfitting

def _signals(r: Record) -> dict:
    """Overfitting signals of one run: train-validation loss gap at the restored and last epoch, epochs after the restored
    one, the epoch of lowest validation loss, and whether validation loss rose from that minimum (by more than
    OVERFIT_RISE) while training loss kept falling"""
    tl, vl, b = [e['train_loss'] for e in r.history], [e['valid_loss'] for e in r.history], r.best_epoch - 1
    m = int(np.argmin(vl))
    return dict(gap_best=vl[b] - tl[b], gap_last=vl[-1] - tl[-1], epochs_after_best=len(r.history) - r.best_epoch,
                min_valid_loss_epoch=m + 1, valid_up_train_down=bool(vl[-1] > (1 + OVERFIT_RISE)*vl[m] and tl[-1] < tl[m]))

def cell_key(r: Record, without=('seed',)) -> str:
    "The cell a run belongs to: its configuration without the seed (the seeds of one cell share it), or without other `without` fields"
    return json.dumps({k: v for k, v in {**CONFIG_ADDED, **r.config}.items() if k not in without}, sort_keys=True)

def records_frame(records) -> pd.DataFrame:
    "One row per record: its config, where it came from, best-epoch validation and test metrics, sizes, timings, signals"
    rows = [{**CONFIG_ADDED, **r.config, 'suite': r.suite, 'key': r.key, 'init': 'pretrained' if r.config['pretrained'] else 'scratch',
             'family': r.arch['family'], 'pretraining': r.arch['pretraining'], 'n_train': r.n_train,
             'n_min_class': min(r.n_train_per_class.values()), 'best_epoch': r.best_epoch, 'epochs_run': len(r.history),
             'epochs_max': r.hyperparams['epochs_max'], 'valid_loss': r.best['valid_loss'],
             **{f'{split}_{m}': scores.get(m, np.nan) for split, scores in (('valid', r.best), ('test', r.test), ('tta', r.test_tta or {})) for m in METRICS},
             'train_seconds': r.train_seconds, 'params': r.params, 'train_path': r.train_path, **_signals(r), 'record': r}
            for r in records]
    return pd.DataFrame(rows)
