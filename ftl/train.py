"One run: a config (plain, hashable data) in, a JSON-ready record out"
from __future__ import annotations
import hashlib, json, platform, tempfile, time, warnings
from dataclasses import dataclass, asdict, replace, fields
from pathlib import Path

import numpy as np, torch, fastai, timm, sklearn
from fastai.vision.all import (Callback, EarlyStoppingCallback, SaveModelCallback, MixUp, accuracy, skm_to_fastai, set_seed,
                               default_device)
from sklearn.metrics import f1_score
from .data import load_source, make_dls, labelled_test_dl, subset_indices
from .models import create_learner, norm_stats, get_arch, weights_id
from .features import cached_path_applies, cached_features, feature_learner
from .strategies import STRATEGIES, augmentations, AUG_PARAMS
from .evaluate import test_metrics

__all__ = ['Config', 'PRESETS', 'History', 'PlainTensors', 'run', 'run_exported', 'build_learner', 'preset_config']

@dataclass(frozen=True)
class Config:
    "Everything that defines one run; its `key` names the record"
    dataset: str = 'elpv'
    size: int = 84
    arch: str = 'efficientnet_lite0'
    pretrained: bool = True
    strategy: str = 'fine-tune'
    augment: bool = False
    mixup: bool = False
    head: str = 'linear'
    fraction: float = 1.0
    seed: int = 0
    epochs: int = 8
    freeze_epochs: int = 1
    lr: float = 2e-3
    bs: int = 32
    patience: int = 3
    monitor: str = 'valid_loss'
    precision: str = 'auto'  # 'auto': fp16 (to_fp16) where CUDA exists, else fp32; or 'fp32'
    def key(self) -> str:
        "A readable, unique file name for this config"
        h = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        init = 'pt' if self.pretrained else 'scratch'
        return (f"{self.dataset.replace(':', '-').replace('/', '_')}-{self.arch}-{init}-{self.strategy}-"
                f"{'aug' if self.augment else 'noaug'}-f{self.fraction:g}-s{self.seed}-{h}")
    def validate(self):
        "Check every field at the boundary, with a message that names the fix"
        get_arch(self.arch)
        if self.strategy not in STRATEGIES: raise ValueError(f"Unknown strategy {self.strategy!r}; choose from {list(STRATEGIES)}")
        if not 0 < self.fraction <= 1: raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        if self.precision not in ('auto', 'fp32'): raise ValueError(f"precision must be 'auto' or 'fp32', got {self.precision!r}")
        if self.epochs < 1 or self.bs < 1 or self.size < 8: raise ValueError(f"epochs, bs >= 1 and size >= 8 needed: {self}")
        return self

PRESETS = {  # quick: sized for 2 CPU cores; full: the study's settings, for a GPU
    'quick': dict(size=84, epochs=8, patience=3, bs=32, seeds=(0,)),
    'full': dict(size=224, epochs=30, patience=5, bs=64, seeds=(0, 1, 2)),
}

def preset_config(preset='quick', **kw) -> Config:
    "A `Config` with a preset's settings, overridden by `kw`"
    p = {k: v for k, v in PRESETS[preset].items() if k != 'seeds'}
    return Config(**{**p, **kw}).validate()

class History(Callback):
    "Per-epoch metrics, peak learning rate per group, and trainable parameters of every fit (stage) of a run"
    order = 70  # after the Recorder has logged the epoch
    def __init__(self): self.epochs, self.stages = [], []
    def before_fit(self):
        if not hasattr(self.learn, 'lr_finder'):
            trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
            groups = [any(p.requires_grad for p in ps if p.ndim > 1) for ps in self.opt.param_lists]  # weights, not BN/bias
            self.stages.append(dict(epochs_max=self.n_epoch, trainable_params=trainable, trainable_groups=groups,
                                    peak_lr=[0.]*len(groups)))
    def after_batch(self):
        if self.training: self.stages[-1]['peak_lr'] = [max(a, h['lr']) for a, h in zip(self.stages[-1]['peak_lr'], self.opt.hypers)]
    def after_epoch(self):
        names, vals = self.recorder.metric_names[1:-1], self.recorder.log[1:-1]
        row = dict(epoch=len(self.epochs), stage=len(self.stages)-1, **{n: float(v) for n, v in zip(names, vals)})
        self.epochs.append({**row, 'lr': [float(h['lr']) for h in self.opt.hypers]})

def _plain(x):
    "A plain tensor (channels_last for image batches on CUDA)"
    x = x.as_subclass(torch.Tensor)
    return x.contiguous(memory_format=torch.channels_last) if x.is_cuda and x.ndim == 4 else x

class PlainTensors(Callback):
    "Feed the model plain tensors: fastai's `TensorImage` subclass sends every op of the forward pass through Python"
    order = 1
    def before_fit(self):
        if torch.cuda.is_available(): self.model.to(memory_format=torch.channels_last)
    def before_batch(self): self.typed, self.learn.xb = self.xb, tuple(_plain(x) for x in self.xb)
    def after_pred(self): self.learn.xb = self.typed  # typed inputs again for gathering and showing (plot_top_losses)

def build_learner(cfg: Config, source=None, device=None):
    "The `Learner` of `cfg` (and its source): stratified subset DataLoaders, explicit normalisation, metrics"
    source = source or load_source(cfg.dataset, cfg.size)
    stats = norm_stats(cfg.arch)  # the scratch arm uses its pretrained twin's statistics too
    dls = make_dls(source, cfg.fraction, cfg.seed, cfg.bs, stats, augmentations(cfg.augment), device=device)
    learn = create_learner(dls, cfg.arch, pretrained=cfg.pretrained, size=cfg.size, head=cfg.head, cbs=[PlainTensors()],
                           metrics=[accuracy, skm_to_fastai(f1_score, average='macro', name='macro_f1')])
    learn.recorder.train_metrics = False
    return learn, source

def _env(device):
    "Versions and device of this run"
    return dict(python=platform.python_version(), torch=torch.__version__, fastai=fastai.__version__, timm=timm.__version__,
                sklearn=sklearn.__version__, device=str(device), threads=torch.get_num_threads(),
                cuda=torch.cuda.get_device_name() if torch.cuda.is_available() else None, host=platform.node())

def _hyperparams(cfg, learn, history, fp16):
    "The hyperparameters that actually ran, read off the learner and the history"
    opt_hypers = {k: float(v) for k, v in learn.opt.hypers[-1].items() if k not in ('lr',)}
    return dict(optimizer=getattr(learn.opt_func, '__name__', str(learn.opt_func)), opt_hypers=opt_hypers,
                schedule='one-cycle (fit_one_cycle: div=25, div_final=1e5, pct_start=0.25, cosine; moms 0.95-0.85-0.95)',
                stages=history.stages, batch_size=cfg.bs, epochs_max=sum(s['epochs_max'] for s in history.stages),
                epochs_run=len(history.epochs), early_stopping=dict(monitor=cfg.monitor, patience=cfg.patience, per='stage'),
                model_selection=f'best {cfg.monitor} on validation (SaveModelCallback across stages)',
                augmentation=dict(aug_transforms=AUG_PARAMS, mixup=cfg.mixup) if cfg.augment else (dict(mixup=True) if cfg.mixup else None),
                head=cfg.head, head_repr=repr(learn.model[-1]), image_size=cfg.size, precision='fp16' if fp16 else 'fp32',
                seed=cfg.seed, train_bn=learn.train_bn)

def _fit_head_only(learn, cfg, cbs):
    "The linear probe on cached features: the head is the whole model"
    learn.fit_one_cycle(cfg.epochs, cfg.lr, cbs=cbs)

def run(cfg: Config, export_to=None, device=None) -> dict:
    "Train `cfg` with early stopping and best-epoch restore on validation, then evaluate the test set once"
    cfg.validate()
    set_seed(cfg.seed, reproducible=True)
    device = device or default_device()
    learn, source = build_learner(cfg, device=device)
    train_idx = subset_indices(source.labels, source.idx('train'), cfg.fraction, cfg.seed, source.classes)
    params = sum(p.numel() for p in learn.model.parameters())
    fast = cached_path_applies(cfg) and not export_to  # an exported model needs its backbone: slow path
    if fast:
        start = time.time()
        feats, cache_hit = cached_features(learn, source, cfg.arch, weights_id(cfg.arch), cfg.size)
        feature_seconds = time.time() - start
        set_seed(cfg.seed, reproducible=True)
        learn, tdl = feature_learner(feats, source, train_idx, cfg.bs, learn.metrics, device)
        fit = _fit_head_only
    else: tdl, fit = labelled_test_dl(learn.dls, source), STRATEGIES[cfg.strategy]
    fp16 = cfg.precision == 'auto' and torch.cuda.is_available()
    if fp16: learn.to_fp16()
    history = History()
    with tempfile.TemporaryDirectory() as tmp:
        learn.path = Path(tmp)
        cbs = [history, EarlyStoppingCallback(monitor=cfg.monitor, patience=cfg.patience),
               SaveModelCallback(monitor=cfg.monitor, reset_on_fit=False, fname='best')] + ([MixUp()] if cfg.mixup else [])
        start = time.time()
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='.*upsample_bicubic2d.*')
            fit(learn, cfg, cbs)
        train_seconds = time.time() - start
    preds, targs = learn.get_preds(dl=tdl)
    vocab = list(source.classes) if fast else list(learn.dls.vocab)
    if vocab != list(source.classes): raise RuntimeError(f"Model outputs are ordered {vocab}, the source's classes {source.classes}")
    mon = [e[cfg.monitor] for e in history.epochs]
    best = int(np.argmin(mon) if 'loss' in cfg.monitor else np.argmax(mon))
    train_counts = np.bincount(source.labels[train_idx], minlength=len(source.classes))
    record = dict(config=asdict(cfg), key=cfg.key(), history=history.epochs, best_epoch=best,
                  test=test_metrics(targs.numpy(), preds.argmax(1).numpy(), vocab), vocab=vocab,
                  n_train=len(train_idx), n_train_per_class=dict(zip(source.classes, train_counts.tolist())),
                  n_valid=len(source.idx('valid')), n_test=len(source.idx('test')),
                  normalization=dict(zip(('mean', 'std'), norm_stats(cfg.arch))), train_seconds=train_seconds,
                  train_path='cached-features' if fast else 'end-to-end',
                  **(dict(feature_seconds=feature_seconds, feature_cache_hit=cache_hit) if fast else {}),
                  hyperparams=_hyperparams(cfg, learn, history, fp16), arch=dict(**asdict(get_arch(cfg.arch))),
                  params=params, env=_env(device))
    if export_to:
        Path(export_to).parent.mkdir(parents=True, exist_ok=True)
        learn.path = Path(export_to).parent
        learn.export(Path(export_to).name)
    return record

def run_exported(cfg: Config, models='models') -> dict:
    "`run` that also exports the learner to `models/<key>.pkl` for the analysis (not on the cached-feature path: no backbone)"
    return run(cfg, export_to=None if cached_path_applies(cfg) else Path(models)/f'{cfg.key()}.pkl')
