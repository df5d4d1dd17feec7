"""Migrate committed run records from schema 1 (before the record schema was written down) to `ftl.records.Record`.

What changes, and why:
- epochs are counted from 1 everywhere (history `epoch` and `stage`, `best_epoch`), as in every table and figure;
- `config.augment` was a bool: True meant fastai's `aug_transforms` ('fastai'), False none ('none');
- the file name is the new `Config.key()` (it hashes the fields that differ from the defaults, so adding a field later
  keeps keys stable); `reused_from` follows the rename;
- schema 1 recorded only the peak lr seen per group and a schedule string that was wrong for `fine-tune` (fastai's
  `fine_tune` runs pct_start 0.99 frozen, then pct_start 0.3, div 5 at base_lr/2). Each stage's schedule is now read off
  fastai's own `ParamScheduler` by replaying the record's strategy (same lr, epochs, freeze epochs, 4 parameter groups)
  on a tiny model: the scheduler depends on nothing else. The measured peaks are kept as `applied_peak_lr`;
- `head_repr` (a PyTorch repr) becomes `head_layers`; `relabelled` becomes a note.
Idempotent: schema-2 records are left alone. Usage: python tools/migrate_records.py [results]
"""
import json, re, sys, warnings
from dataclasses import asdict
from pathlib import Path
import torch
from torch import nn
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings('ignore')
from fastai.vision.all import Learner, DataLoaders, DataLoader, CrossEntropyLossFlat
from ftl.train import Config, History
from ftl.strategies import STRATEGIES, describe_augmentation
from ftl.records import Record, SCHEMA_VERSION, save_record

def replay_schedule(cfg: Config, n_groups: int) -> list:
    "Each stage's schedule as fastai's ParamScheduler sets it for `cfg`'s strategy (one batch per epoch, nothing learned)"
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(n_groups)])
    data = [(torch.randn(2), torch.tensor(0)) for _ in range(4)]
    dls = DataLoaders(DataLoader(data, bs=4), DataLoader(data, bs=4))
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), splitter=lambda m: [list(l.parameters()) for l in m])
    hist = History()
    with learn.no_bar(), learn.no_logging():
        if n_groups == 1: learn.fit_one_cycle(cfg.epochs, cfg.lr, cbs=[hist])  # the cached-feature probe
        else: STRATEGIES[cfg.strategy](learn, cfg, [hist])
    return hist.stages

def migrate(d: dict) -> tuple:
    "The schema-2 record of schema-1 dict `d`, and the old key"
    c = dict(d['config']); old_key = d['key']
    c['augment'] = {True: 'fastai', False: 'none'}.get(c['augment'], c['augment'])
    cfg = Config(**c)
    h = d['hyperparams']
    replay = replay_schedule(cfg, 1 if d['train_path'] == 'cached-features' else 4)
    if len(replay) != len(h['stages']): raise RuntimeError(f"{old_key}: {len(h['stages'])} stages recorded, replay gives {len(replay)}")
    stages = [{**r, 'trainable_params': s['trainable_params'], 'trainable_groups': s['trainable_groups'],
               'applied_peak_lr': s['peak_lr'], 'applied_first_lr': None} for r, s in zip(replay, h['stages'])]
    es = h['early_stopping']
    hyper = dict(optimizer=h['optimizer'], opt_hypers={k: v for k, v in h['opt_hypers'].items() if k != 'mom'}, stages=stages,
                 batch_size=h['batch_size'], epochs_max=h['epochs_max'], epochs_run=h['epochs_run'],
                 early_stopping=None if es['patience'] >= cfg.epochs else dict(monitor=es['monitor'], patience=es['patience']),
                 model_selection=dict(monitor=cfg.monitor, on='validation'), augmentation=describe_augmentation(cfg.augment),
                 mixup=cfg.mixup, head=h['head'], head_layers=re.findall(r'\): (\w+)\(', h['head_repr']), class_weights=None,
                 image_size=h['image_size'], precision=h['precision'], seed=h['seed'], train_bn=h['train_bn'])
    notes = [f"migrated from schema 1 by tools/migrate_records.py (old key {old_key}); schedule replayed from fastai's ParamScheduler"]
    if 'relabelled' in d: notes.insert(0, d['relabelled'])
    rec = Record(key=cfg.key(), config=asdict(cfg), vocab=d['vocab'], data_id='', n_train=d['n_train'],
                 n_train_per_class=d['n_train_per_class'], n_valid=d['n_valid'], n_test=d['n_test'], normalization=d['normalization'],
                 history=[{**e, 'epoch': e['epoch'] + 1, 'stage': e['stage'] + 1} for e in d['history']], best_epoch=d['best_epoch'] + 1,
                 test=d['test'], hyperparams=hyper, train_path=d['train_path'], train_seconds=d['train_seconds'], arch=d['arch'],
                 params=d['params'], env=d['env'], feature_seconds=d.get('feature_seconds'), feature_cache_hit=d.get('feature_cache_hit'),
                 reused_from=d.get('reused_from'), notes=notes)
    return rec.validate(), old_key

if __name__ == '__main__':
    root = Path(sys.argv[1] if len(sys.argv) > 1 else 'results')
    renamed = {}
    todo = [(p, json.loads(p.read_text())) for p in sorted(root.rglob('*.json'))]
    todo = [(p, d) for p, d in todo if isinstance(d, dict) and 'config' in d and 'history' in d and d.get('version') != SCHEMA_VERSION]
    for p, d in todo:
        rec, old = migrate(d)
        renamed[old] = rec.key
        new = p.with_name(f'{rec.key}.json')
        save_record(rec, new)
        if new != p: p.unlink()
        print(f'{p} -> {new.name}')
    for p in sorted(root.rglob('*.json')):  # reused_from names the renamed twin
        d = json.loads(p.read_text())
        if isinstance(d, dict) and d.get('reused_from'):
            suite, name = d['reused_from'].split('/')
            if name[:-5] in renamed: d['reused_from'] = f"{suite}/{renamed[name[:-5]]}.json"; save_record(d, p)
    print(f'{len(todo)} records migrated to schema {SCHEMA_VERSION}')
