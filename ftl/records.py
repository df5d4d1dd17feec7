"Results store: one JSON record per run, written atomically; suites skip what exists; records load into pandas"
from __future__ import annotations
import json, os, tempfile
from pathlib import Path
import pandas as pd

__all__ = ['record_path', 'save_record', 'load_record', 'run_suite', 'read_records', 'load_records']

def record_path(results, suite, cfg) -> Path: return Path(results)/suite/f'{cfg.key()}.json'

def save_record(record: dict, path) -> Path:
    "Write `record` as JSON to `path` atomically: a temporary file in the same folder, then a rename"
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix='.tmp-', suffix='.json')
    try:
        with os.fdopen(fd, 'w') as f: json.dump(record, f, indent=1, default=float)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True); raise
    return path

def load_record(path) -> dict: return json.loads(Path(path).read_text())

def run_suite(configs, suite, results='results', run_fn=None, on_record=None) -> list:
    "Run every config whose record is missing under `results/suite` (or reuse the same config's record from another suite)"
    from .train import run
    run_fn = run_fn or run
    records = []
    for cfg in configs:
        path = record_path(results, suite, cfg)
        twin = next(Path(results).glob(f'*/{cfg.key()}.json'), None)  # the same config, run by another suite
        if path.exists(): rec, fresh = load_record(path), False
        elif twin is not None: rec, fresh = {**load_record(twin), 'reused_from': str(twin.relative_to(results))}, False; save_record(rec, path)
        else: rec, fresh = run_fn(cfg), True; save_record(rec, path)
        records.append(rec)
        if on_record: on_record(rec, fresh)
    return records

def read_records(folder) -> list:
    "Every run record under `folder` (recursively), each with its `suite` and `path`"
    recs = []
    for p in sorted(Path(folder).rglob('*.json')):
        if p.name.startswith('.tmp-'): continue
        r = load_record(p)
        if 'config' in r and 'history' in r: recs.append({**r, 'suite': p.parent.name, 'path': str(p)})
    return recs

def load_records(folder) -> pd.DataFrame:
    "All records under `folder` (recursively) as one row each: config fields, test metrics, timings"
    rows = []
    for r in read_records(folder):
        p = Path(r['path'])
        best = r['history'][r['best_epoch']]
        rows.append({**r['config'], 'suite': p.parent.name, 'key': r['key'], 'test_accuracy': r['test']['accuracy'],
                     'valid_loss': best['valid_loss'], 'valid_accuracy': best['accuracy'], 'valid_macro_f1': best['macro_f1'],
                     'test_macro_f1': r['test']['macro_f1'], 'best_epoch': r['best_epoch'], 'epochs_run': len(r['history']),
                     'n_train': r['n_train'], 'train_seconds': r['train_seconds'], 'params': r.get('params'), 'path': str(p)})
    return pd.DataFrame(rows)
