"One run: a config (plain, hashable data) in; a trained learner and its record out"
from __future__ import annotations
import hashlib, json, math, platform, sys, tempfile, time, warnings
from contextlib import nullcontext
from dataclasses import dataclass, asdict, fields, replace
from pathlib import Path

import numpy as np, torch, fastai, timm, sklearn
from fastai.vision.all import (Callback, EarlyStoppingCallback, SaveModelCallback, ParamScheduler, MixUp, CrossEntropyLossFlat,
                               accuracy, skm_to_fastai, set_seed, default_device)
from fastai.callback.fp16 import MixedPrecision
from fastcore.foundation import L
from torch.amp import GradScaler
from sklearn.metrics import f1_score
from .errors import ConfigError, DataError
from .data import load_source, make_dls, labelled_test_dl, subset_indices, check_dataset_name, dataset_id
from .models import create_learner, norm_stats, get_arch, weights_file, weights_id
from .features import cached_path_applies, cached_features, feature_learner
from .strategies import STRATEGIES, AUGMENTATIONS, N_GROUPS, augmentations, describe_augmentation
from .evaluate import test_metrics
from .records import Record, SCHEMA_VERSION

__all__ = ['Config', 'PRESETS', 'MONITORS', 'PRECISIONS', 'CPUBFloat16', 'History', 'PlainTensors', 'preset_config', 'grid_runs', 'strategy_order', 'prepare', 'build_learner', 'train',
           'run', 'export']

MONITORS = ('valid_loss', 'macro_f1', 'accuracy', 'last')  # what picks the restored epoch on validation; 'last': the final one
PRECISIONS = ('auto', 'fp32', 'bf16')

@dataclass(frozen=True)
class Config:
    "Everything that defines one run; its `key` names the record"
    dataset: str = 'elpv'
    size: int = 84
    arch: str = 'efficientnet_lite0'
    pretrained: bool = True
    strategy: str = 'fine-tune'
    augment: str = 'none'        # a name in strategies.AUGMENTATIONS
    mixup: bool = False
    head: str = 'linear'         # 'linear' (pool + one linear layer) or 'mlp' (fastai's two-layer head)
    fraction: float = 1.0        # stratified share of the training split; validation and test never shrink
    seed: int = 0
    epochs: int = 8              # total epochs of the run, across its stages
    freeze_epochs: int = 1       # fine-tune: epochs on the head before unfreezing (part of `epochs`)
    lr: float = 2e-3
    bs: int = 32
    patience: int = 3            # epochs without a better `monitor` before stopping; >= epochs: never stops early
    monitor: str = 'valid_loss'  # one of MONITORS: the validation quantity that restores the best epoch
    class_weights: bool = False  # cross-entropy weighted by inverse class frequency of the training subset
    tta: bool = False            # also evaluate the test split with fastai's test-time augmentation
    precision: str = 'auto'      # 'auto': fp16 (to_fp16) where CUDA exists, else fp32; 'fp32'; or 'bf16' (autocast, CPU or CUDA)

    def key(self) -> str:
        "A readable, unique file name: the fields that differ from the defaults (and a folder dataset's content) hashed"
        changed = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}
        ident = dataset_id(self.dataset)
        h = hashlib.sha1(json.dumps({**changed, **({'data': ident} if ident else {})}, sort_keys=True).encode()).hexdigest()[:8]
        init = 'pt' if self.pretrained else 'scratch'
        return (f"{self.dataset.split('?')[0].replace(':', '-').replace('/', '_')}-{self.arch}-{init}-{self.strategy}-"
                f"{self.augment}-f{self.fraction:g}-s{self.seed}-{h}")

    def validate(self):
        "Check every field at the boundary, with a message that names the field, the value and what is allowed"
        def need(ok, field, allowed):
            if not ok: raise ConfigError(f"Config.{field} must be {allowed}, got {getattr(self, field)!r}")
        num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        integer = lambda v: isinstance(v, int) and not isinstance(v, bool)
        try: check_dataset_name(self.dataset)
        except DataError as e: raise ConfigError(f'Config.dataset: {e}') from None
        a = get_arch(self.arch)
        need(integer(self.size) and self.size >= 16 and self.size % a.size_multiple == 0, 'size',
             f'an integer >= 16' + (f' and a multiple of {a.size_multiple} for {a.name}' if a.size_multiple > 1 else ''))
        need(self.strategy in STRATEGIES, 'strategy', f'one of {list(STRATEGIES)}')
        need(self.augment in AUGMENTATIONS, 'augment', f'one of {list(AUGMENTATIONS)}')
        need(self.head in ('linear', 'mlp'), 'head', "'linear' or 'mlp'")
        need(num(self.fraction) and 0 < self.fraction <= 1, 'fraction', 'in (0, 1]')
        need(integer(self.seed) and self.seed >= 0, 'seed', 'an integer >= 0')
        need(integer(self.epochs) and self.epochs >= 1, 'epochs', 'an integer >= 1')
        if self.strategy == 'gradual-unfreeze': need(self.epochs >= N_GROUPS, 'epochs', f'>= {N_GROUPS} for gradual-unfreeze (one stage per parameter group)')
        need(integer(self.freeze_epochs) and self.freeze_epochs >= 0, 'freeze_epochs', 'an integer >= 0')
        if self.strategy == 'fine-tune': need(1 <= self.freeze_epochs < self.epochs, 'freeze_epochs', f'between 1 and epochs - 1 = {self.epochs - 1} for fine-tune')
        need(num(self.lr) and self.lr > 0, 'lr', 'a positive number')
        need(integer(self.bs) and self.bs >= 1, 'bs', 'an integer >= 1')
        need(integer(self.patience) and self.patience >= 1, 'patience', 'an integer >= 1')
        need(self.monitor in MONITORS, 'monitor', f'one of {list(MONITORS)}')
        for b in ('pretrained', 'mixup', 'class_weights', 'tta'): need(isinstance(getattr(self, b), bool), b, 'True or False')
        need(self.precision in PRECISIONS, 'precision', f'one of {list(PRECISIONS)}')
        return self

PRESETS = {  # settings for a kind of machine: Config fields, plus the seeds and augmentation arms a suite runs
    'quick': dict(size=84, epochs=8, patience=3, bs=32, seeds=(0,), augment_arms=('none', 'fastai')),  # a first look on 2 CPU cores
    'full': dict(size=224, epochs=30, patience=30, bs=64, seeds=(0, 1, 2), augment_arms=('none', 'dihedral')),  # the study, for a GPU
    # this CPU's study, within 6 hours: 128 px (validation macro-F1 within 0.01 of 224 px at a sixth of the cost: the resolution
    # suite), the whole one-cycle schedule, the final annealed epoch restored (no worse than the validation-loss pick on average);
    # the grid suites build on a backbone whose strategies grid fits `grid_hours` of this CPU; the ViT, the costliest
    # family, trains in bfloat16 autocast (bench/bf16.py times both precisions and pairs their records' accuracy)
    'study': dict(size=128, epochs=12, patience=12, bs=32, seeds=(0, 1, 2), augment_arms=('none', 'dihedral'), monitor='last',
                  grid_hours=4, bf16_families=('ViT',)),
}

def grid_runs(preset: str) -> int:
    "Runs in a preset's strategies grid: every strategy, augmentation arm and seed"
    return len(STRATEGIES)*len(PRESETS[preset]['augment_arms'])*len(PRESETS[preset]['seeds'])

def strategy_order(augment_arms) -> dict:
    "The rows of a strategies table: strategies in `STRATEGIES` order, then augmentation arms in the preset's order"
    return dict(strategy=list(STRATEGIES), augment=list(augment_arms))

def preset_config(preset='quick', **kw) -> Config:
    "A `Config` with a preset's settings (bf16 for its `bf16_families`, where a network trains), overridden by `kw`"
    if preset not in PRESETS: raise ConfigError(f"Unknown preset {preset!r}; choose from {list(PRESETS)}")
    names = {f.name for f in fields(Config)}
    if (unknown := set(kw) - names): raise ConfigError(f"Unknown Config fields {sorted(unknown)}; the fields are {sorted(names)}")
    cfg = Config(**{**{k: v for k, v in PRESETS[preset].items() if k in names}, **kw}).validate()
    bf16 = any(get_arch(cfg.arch).family.startswith(f) for f in PRESETS[preset].get('bf16_families', ()))
    return replace(cfg, precision='bf16') if bf16 and 'precision' not in kw and not cached_path_applies(cfg) else cfg

def _schedule(sched: ParamScheduler | None, n_groups: int) -> dict:
    "The stage's learning-rate and momentum schedule, read off fastai's live `ParamScheduler`"
    if sched is None or 'lr' not in sched.scheds: return dict(schedule='constant')
    pct = np.linspace(0, 1, 10001)
    lr = np.stack([np.broadcast_to(np.asarray(sched.scheds['lr'](p), float), (n_groups,)) for p in pct])
    top = int(lr[:, -1].argmax())
    mom = sched.scheds.get('mom')
    return dict(schedule='one-cycle (cosine warm-up, cosine annealing)', start_lr=lr[0].tolist(), peak_lr=lr[top].tolist(),
                final_lr=lr[-1].tolist(), pct_start=round(float(pct[top]), 4), div=float(lr[top, -1]/lr[0, -1]),
                div_final=float(lr[top, -1]/lr[-1, -1]), moms=[float(mom(p)) for p in (0, pct[top], 1)] if mom else None)

class History(Callback):
    "Per-epoch metrics and, per fit (stage): the schedule fastai applies, the lr seen per batch, trainable groups"
    order = 70  # after the Recorder has logged the epoch
    def __init__(self): self.epochs, self.stages = [], []
    def before_fit(self):
        if hasattr(self.learn, 'lr_finder'): return
        groups = [any(p.requires_grad for p in ps if p.ndim > 1) for ps in self.opt.param_lists]  # weights, not BN/bias
        sched = next((cb for cb in self.learn.cbs if isinstance(cb, ParamScheduler)), None)
        self.stages.append(dict(epochs_max=self.n_epoch, trainable_params=sum(p.numel() for p in self.model.parameters() if p.requires_grad),
                                trainable_groups=groups, **_schedule(sched, len(groups)), applied_first_lr=None,
                                applied_peak_lr=[0.]*len(groups)))
    def after_batch(self):
        if not self.training or not self.stages: return
        st, lrs = self.stages[-1], [float(h['lr']) for h in self.opt.hypers]
        if st['applied_first_lr'] is None: st['applied_first_lr'] = lrs
        st['applied_peak_lr'] = [max(a, b) for a, b in zip(st['applied_peak_lr'], lrs)]
    def after_epoch(self):
        names, vals = self.recorder.metric_names[1:-1], self.recorder.log[1:-1]
        row = dict(epoch=len(self.epochs) + 1, stage=len(self.stages), **{n: float(v) for n, v in zip(names, vals)})
        self.epochs.append({**row, 'lr': [float(h['lr']) for h in self.opt.hypers]})

def _plain(x):
    "A plain tensor; image batches in channels_last (faster convolutions on CPU and GPU: bench/channels_last.py)"
    x = x.as_subclass(torch.Tensor)
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x

class PlainTensors(Callback):
    "Feed the model plain channels_last tensors: fastai's `TensorImage` subclass sends every op of the forward pass through Python"
    order = 1
    def before_fit(self): self.model.to(memory_format=torch.channels_last)
    def before_batch(self): self.typed, self.learn.xb = self.xb, tuple(_plain(x) for x in self.xb)
    def after_pred(self): self.learn.xb = self.typed  # typed inputs again for gathering and showing (plot_top_losses)

def prepare(cfg: Config):
    "Decode the dataset and convert the packaged weights into the cache (nothing random happens here): a cold cache == a warm one"
    source = load_source(cfg.dataset, cfg.size)
    if cfg.pretrained and get_arch(cfg.arch).weights.startswith('package:'): weights_file(cfg.arch)
    return source

def _metrics(): return [accuracy, skm_to_fastai(f1_score, average='macro', name='macro_f1')]

def _class_weights(source, train_idx) -> torch.Tensor:
    "Inverse class frequency of the training subset, scaled to mean 1 (sklearn's 'balanced')"
    counts = np.bincount(source.labels[train_idx], minlength=len(source.classes))
    return torch.tensor(len(train_idx)/(len(counts)*np.maximum(counts, 1)), dtype=torch.float32)

def build_learner(cfg: Config, source=None, device=None):
    "The `Learner` of `cfg` (and its source): stratified subset DataLoaders, explicit normalisation, metrics, loss"
    source = source or load_source(cfg.dataset, cfg.size)
    stats = norm_stats(cfg.arch)  # the scratch arm uses its pretrained twin's statistics too
    dls = make_dls(source, cfg.fraction, cfg.seed, cfg.bs, stats, augmentations(cfg.augment), device=device)
    train_idx = subset_indices(source.labels, source.idx('train'), cfg.fraction, cfg.seed, source.classes)
    weight = _class_weights(source, train_idx) if cfg.class_weights else None
    learn = create_learner(dls, cfg.arch, pretrained=cfg.pretrained, size=cfg.size, head=cfg.head, cbs=[PlainTensors()],
                           metrics=_metrics(), loss_func=CrossEntropyLossFlat(weight=weight))
    learn.recorder.train_metrics = False
    return learn, source

def _probe_learner(cfg, source, train_idx, device):
    "The cached-feature path: backbone features of every image (cached), a linear head on them; and the test DataLoader"
    start = time.time()
    feats, hit = cached_features(cfg.arch, weights_id(cfg.arch), cfg.size, source, lambda: build_learner(cfg, source, device)[0])
    set_seed(cfg.seed, reproducible=True)  # the head's init and the batch order do not depend on the cache's state
    weight = _class_weights(source, train_idx) if cfg.class_weights else None
    learn, tdl = feature_learner(feats, source, train_idx, cfg.bs, _metrics(), device, loss_func=CrossEntropyLossFlat(weight=weight))
    return learn, tdl, dict(feature_seconds=time.time() - start, feature_cache_hit=hit)

def _callbacks(cfg, history):
    "History, early stopping and best-epoch restore on validation (none of either for monitor 'last'), MixUp"
    keep = [] if cfg.monitor == 'last' else [EarlyStoppingCallback(monitor=cfg.monitor, patience=cfg.patience),
                                             SaveModelCallback(monitor=cfg.monitor, reset_on_fit=False, fname='best')]
    return [history, *keep] + ([MixUp()] if cfg.mixup else [])

def _best_epoch(cfg, history) -> int:
    "The 1-based epoch restored: the one SaveModelCallback kept (the best `monitor` on validation), or the last"
    if cfg.monitor == 'last': return len(history.epochs)
    mon = [e[cfg.monitor] for e in history.epochs]
    return int(np.argmin(mon) if 'loss' in cfg.monitor else np.argmax(mon)) + 1

def _env(device):
    "Versions and device of this run"
    return dict(python=platform.python_version(), torch=torch.__version__, fastai=fastai.__version__, timm=timm.__version__,
                sklearn=sklearn.__version__, device=str(device), threads=torch.get_num_threads(),
                cuda=torch.cuda.get_device_name() if torch.cuda.is_available() else None, host=platform.node())

def _hyperparams(cfg, learn, history, precision) -> dict:
    "The hyperparameters that actually ran, read off the learner, its optimizer and fastai's schedulers"
    hp = learn.opt.hypers[-1]
    return dict(optimizer=getattr(learn.opt_func, '__name__', str(learn.opt_func)),
                opt_hypers={k: float(v) for k, v in hp.items() if k not in ('lr', 'mom')}, stages=history.stages,
                batch_size=cfg.bs, epochs_max=sum(s['epochs_max'] for s in history.stages), epochs_run=len(history.epochs),
                early_stopping=None if cfg.monitor == 'last' or cfg.patience >= cfg.epochs else dict(monitor=cfg.monitor, patience=cfg.patience),
                model_selection=dict(monitor=cfg.monitor, on='validation'),
                augmentation=describe_augmentation(cfg.augment), mixup=cfg.mixup, head=cfg.head,
                head_layers=[type(m).__name__ for m in learn.model[-1].modules() if not list(m.children())],
                class_weights=learn.loss_func.func.weight.tolist() if getattr(learn.loss_func.func, 'weight', None) is not None else None,
                image_size=cfg.size, precision=precision, seed=cfg.seed, train_bn=learn.train_bn,
                tta=describe_augmentation(cfg.augment if cfg.augment != 'none' else TTA_AUGMENT) if cfg.tta else None)

class CPUBFloat16(MixedPrecision):
    "fastai's `MixedPrecision` in bfloat16 with the CPU's autocast (fastai's own autocasts CUDA only); no loss scaling"
    def before_fit(self): self.autocast, self.learn.scaler, self.scales = torch.autocast('cpu', dtype=torch.bfloat16), GradScaler('cpu', enabled=False), L()

def mixed_precision(learn, precision: str) -> str:
    "Put `learn` in `precision` ('auto': fp16 where CUDA exists); returns the precision it will train in"
    cuda = learn.dls.device.type == 'cuda'
    if precision == 'auto' and cuda: learn.to_fp16(); return 'fp16'
    if precision == 'bf16': learn.to_bf16() if cuda else learn.add_cb(CPUBFloat16(amp_mode='bf16')); return 'bf16'
    return 'fp32'

TTA_AUGMENT = 'dihedral'  # test-time augmentation for a model trained without any: a cell has no canonical orientation

def _evaluate(learn, tdl, classes, tta_dl=None) -> tuple:
    "Test metrics of the restored model, and with fastai's test-time augmentation over `tta_dl` when given"
    preds, targs = learn.get_preds(dl=tdl)
    plain = test_metrics(targs.numpy(), preds.argmax(1).numpy(), classes)
    if tta_dl is None: return plain, None
    tpreds, ttargs = learn.tta(dl=tta_dl)
    if not (ttargs == targs).all(): raise RuntimeError('test-time augmentation changed the order of the test images')
    return plain, test_metrics(ttargs.numpy(), tpreds.argmax(1).numpy(), classes)

def _tta_dl(cfg, source, tdl):
    "The test DataLoader whose training-mode transforms fastai's `tta` applies: the run's augmentation, else TTA_AUGMENT"
    if cfg.augment != 'none': return tdl
    dls = make_dls(source, cfg.fraction, cfg.seed, cfg.bs, norm_stats(cfg.arch), augmentations(TTA_AUGMENT))
    return labelled_test_dl(dls, source)

def train(cfg: Config, device=None) -> tuple:
    "Train `cfg`: restore its best validation epoch, evaluate the test split once; returns (learner, `Record`)"
    cfg.validate()
    source = prepare(cfg)
    device = device or default_device()
    train_idx = subset_indices(source.labels, source.idx('train'), cfg.fraction, cfg.seed, source.classes)
    probe = cached_path_applies(cfg)  # the path is chosen once
    if probe: learn, tdl, extra = _probe_learner(cfg, source, train_idx, device)
    else:
        set_seed(cfg.seed, reproducible=True)
        (learn, _), extra = build_learner(cfg, source, device), {}
        tdl = labelled_test_dl(learn.dls, source)
        vocab = list(learn.dls.vocab)
        if vocab != list(source.classes): raise RuntimeError(f"Model outputs are ordered {vocab}, the source's classes {source.classes}")
    precision = 'fp32' if probe else mixed_precision(learn, cfg.precision)
    history, fit = History(), (lambda l, c, cbs: l.fit_one_cycle(c.epochs, c.lr, cbs=cbs)) if probe else STRATEGIES[cfg.strategy]
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*upsample_bicubic2d.*')
        learn.path, start = Path(tmp), time.time()
        with learn.no_bar() if not sys.stdout.isatty() else nullcontext():  # logs get one line per epoch, not a bar per batch
            fit(learn, cfg, _callbacks(cfg, history))
        train_seconds = time.time() - start
    test, test_tta = _evaluate(learn, tdl, list(source.classes), _tta_dl(cfg, source, tdl) if cfg.tta and not probe else None)
    counts = np.bincount(source.labels[train_idx], minlength=len(source.classes))
    record = Record(version=SCHEMA_VERSION, key=cfg.key(), config=asdict(cfg), vocab=list(source.classes),
                    data_id=dataset_id(cfg.dataset), n_train=len(train_idx), n_train_per_class=dict(zip(source.classes, counts.tolist())),
                    n_valid=len(source.idx('valid')), n_test=len(source.idx('test')),
                    normalization=dict(zip(('mean', 'std'), map(list, norm_stats(cfg.arch)))), history=history.epochs,
                    best_epoch=_best_epoch(cfg, history), test=test, test_tta=test_tta, hyperparams=_hyperparams(cfg, learn, history, precision),
                    train_path='cached-features' if probe else 'end-to-end', train_seconds=train_seconds, **extra,
                    arch=asdict(get_arch(cfg.arch)), params=sum(p.numel() for p in learn.model.parameters()), env=_env(device))
    return learn, record.validate()

def run(cfg: Config, device=None) -> Record:
    "The record of `cfg` (see `train`), the learner dropped"
    return train(cfg, device)[1]

def export(learn, path) -> Path:
    "Export `learn` with fastai's `export` (reload with `load_learner`; it predicts on file paths, PIL images and arrays)"
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    learn.path = path.parent
    learn.export(path.name)
    return path
