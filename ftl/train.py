"One run: a config (plain, hashable data) in; a trained learner and its record out"
from __future__ import annotations
import platform, sys, tempfile, time, warnings
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np, torch, fastai, timm, sklearn
from fastai.vision.all import EarlyStoppingCallback, SaveModelCallback, MixUp, set_seed, default_device
from .metrics import fastai_metrics
from .data import make_dls, labelled_test_dl, subset_indices
from .config import Config, PRESETS, MONITORS, PRECISIONS, preset_config, grid_runs, strategy_order
from .callbacks import History, Checkpoint, PlainTensors, CPUBFloat16, mixed_precision
from .models import create_learner, norm_stats, get_arch, weights_file, weights_id
from .features import cached_path_applies, cached_features, feature_learner
from .strategies import STRATEGIES, augmentations, describe_augmentation
from .evaluate import test_metrics
from .losses import make_loss, describe_loss
from .records import Record, SCHEMA_VERSION
from .errors import ConfigError
from .files import cache_dir, write_atomic

__all__ = ['prepare', 'build_learner', 'train', 'run', 'run_config', 'export', 'probe_as_model', 'probe_head_file']

def prepare(cfg: Config, dataset=None, arch=None):
    """Decode the dataset and convert the packaged weights into the cache (nothing random happens here): a cold cache == a warm
    one; `dataset` and `arch` are the run's resolved `Dataset` and `Arch` (`cfg.resolve()` when not given)"""
    if dataset is None or arch is None: dataset, arch = cfg.resolve()
    source = dataset.load(cfg.size, cfg.skip_bad_images)
    if cfg.pretrained and arch.weights.startswith('package:'): weights_file(arch)
    return source

def _class_weights(source, train_idx) -> torch.Tensor:
    "Inverse class frequency of the training subset, scaled to mean 1 (sklearn's 'balanced')"
    counts = np.bincount(source.labels[train_idx], minlength=len(source.classes))
    return torch.tensor(len(train_idx)/(len(counts)*np.maximum(counts, 1)), dtype=torch.float32)

def check_ordered(source):
    "An ordinal loss reads the classes as levels in label order: only a card that says `ordered: true` allows that"
    from .datasets import card_of
    if not card_of(source).ordered:
        raise ConfigError(f"Config.loss 'ordinal' treats the classes of {source.name} {list(source.classes)} as ordered levels, but its "
                          "dataset card does not say `ordered: true`: add that line to the card (if the label order is the levels' order) "
                          "or use loss 'cross-entropy'")

def build_learner(cfg: Config, source=None, device=None, arch=None):
    "The `Learner` of `cfg` (and its source): stratified subset DataLoaders, explicit normalisation, metrics, loss"
    source, arch = source or prepare(cfg), arch or get_arch(cfg.arch)
    if cfg.loss == 'ordinal': check_ordered(source)
    stats = norm_stats(arch)  # the scratch arm uses its pretrained twin's statistics too
    dls = make_dls(source, cfg.fraction, cfg.seed, cfg.bs, stats, augmentations(cfg.augment), device=device)
    train_idx = subset_indices(source.labels, source.idx('train'), cfg.fraction, cfg.seed, source.classes)
    weight = _class_weights(source, train_idx) if cfg.class_weights else None
    learn = create_learner(dls, arch, pretrained=cfg.pretrained, size=cfg.size, head=cfg.head, cbs=[PlainTensors()],
                           metrics=fastai_metrics(), loss_func=make_loss(cfg.loss, len(source.classes), weight))
    learn.recorder.train_metrics = False
    return learn, source

def _probe_learner(cfg, source, arch, train_idx, device):
    "The cached-feature path: backbone features of every image (cached), a linear head on them; and the test DataLoader"
    start = time.time()
    feats, hit = cached_features(arch.name, weights_id(arch), cfg.size, source, lambda: build_learner(cfg, source, device, arch)[0])
    set_seed(cfg.seed, reproducible=True)  # the head's init and the batch order do not depend on the cache's state
    weight = _class_weights(source, train_idx) if cfg.class_weights else None
    learn, tdl = feature_learner(feats, source, train_idx, cfg.bs, fastai_metrics(), device, loss_func=make_loss(cfg.loss, len(source.classes), weight))
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

def cpu_bf16_flags() -> str:
    "The CPU's bfloat16 instructions (AMX tiles, AVX-512 BF16) as /proc/cpuinfo lists them: what decides bf16's speed on a CPU"
    try: flags = next(l for l in open('/proc/cpuinfo') if l.startswith('flags')).split()
    except (OSError, StopIteration): return 'unknown'
    return ', '.join(f for f in flags if 'bf16' in f or f.startswith('amx')) or 'none'

def _env(device):
    "Versions and device of this run, and the CPU's bfloat16 instructions (a bf16 run's speed depends on them)"
    return dict(python=platform.python_version(), torch=torch.__version__, fastai=fastai.__version__, timm=timm.__version__,
                sklearn=sklearn.__version__, device=str(device), threads=torch.get_num_threads(),
                cuda=torch.cuda.get_device_name() if torch.cuda.is_available() else None, host=platform.node(),
                cpu_bf16=cpu_bf16_flags())

def _hyperparams(cfg, learn, history, precision) -> dict:
    "The hyperparameters that actually ran, read off the learner, its optimizer and fastai's schedulers"
    hp, loss = learn.opt.hypers[-1], describe_loss(learn.loss_func)
    return dict(optimizer=getattr(learn.opt_func, '__name__', str(learn.opt_func)),
                opt_hypers={k: float(v) for k, v in hp.items() if k not in ('lr', 'mom')}, stages=history.stages,
                batch_size=learn.dls.train.bs, epochs_max=sum(s['epochs_max'] for s in history.stages), epochs_run=len(history.epochs),
                early_stopping=None if cfg.monitor == 'last' or cfg.patience >= cfg.epochs else dict(monitor=cfg.monitor, patience=cfg.patience),
                model_selection=dict(monitor=cfg.monitor, on='validation'),
                augmentation=describe_augmentation(cfg.augment), mixup=cfg.mixup, head=cfg.head,
                head_layers=[type(m).__name__ for m in learn.model[-1].modules() if not list(m.children())],
                class_weights=loss['class_weights'], loss=loss,
                image_size=cfg.size, precision=precision, seed=cfg.seed, train_bn=learn.train_bn,
                tta=describe_augmentation(cfg.augment if cfg.augment != 'none' else TTA_AUGMENT) if cfg.tta else None)

TTA_AUGMENT = 'dihedral'  # test-time augmentation for a model trained without any: a cell has no canonical orientation

def predictions(learn, dl) -> dict:
    "The restored model's class probabilities (rounded to 5 decimals) and the targets of `dl`, in the split's order"
    probs, targs = learn.get_preds(dl=dl)
    return dict(probs=np.round(probs.float().numpy(), 5).tolist(), targets=targs.numpy().astype(int).tolist())

def _evaluate(learn, tdl, classes, tta_dl=None) -> tuple:
    """Test metrics of the restored model (and with fastai's test-time augmentation over `tta_dl` when given), and its
    validation and test predictions, from which ensembles and derived tasks are scored without the model"""
    preds = dict(valid=predictions(learn, learn.dls.valid), test=predictions(learn, tdl))
    y, p = (np.array(preds['test'][k]) for k in ('targets', 'probs'))
    plain = test_metrics(y, p.argmax(1), classes)
    if tta_dl is None: return plain, None, preds
    tpreds, ttargs = learn.tta(dl=tta_dl)
    if not (ttargs.numpy() == y).all(): raise RuntimeError('test-time augmentation changed the order of the test images')
    return plain, test_metrics(y, tpreds.argmax(1).numpy(), classes), preds

def _tta_dl(cfg, source, arch, tdl):
    "The test DataLoader whose training-mode transforms fastai's `tta` applies: the run's augmentation, else TTA_AUGMENT"
    if cfg.augment != 'none': return tdl
    dls = make_dls(source, cfg.fraction, cfg.seed, cfg.bs, norm_stats(arch), augmentations(TTA_AUGMENT))
    return labelled_test_dl(dls, source)

def train(cfg: Config, device=None) -> tuple:
    "Train `cfg`: restore its best validation epoch, evaluate the test split once; returns (learner, `Record`)"
    dataset, arch = cfg.resolve()  # the names looked up once, here; the resolved objects go inward
    source = prepare(cfg, dataset, arch)
    device = device or default_device()
    train_idx = subset_indices(source.labels, source.idx('train'), cfg.fraction, cfg.seed, source.classes)
    probe = cached_path_applies(cfg)  # the path is chosen once
    if probe: learn, tdl, extra = _probe_learner(cfg, source, arch, train_idx, device)
    else:
        set_seed(cfg.seed, reproducible=True)
        (learn, _), extra = build_learner(cfg, source, device, arch), {}
        tdl = labelled_test_dl(learn.dls, source)
        vocab = list(learn.dls.vocab)
        if vocab != list(source.classes): raise RuntimeError(f"Model outputs are ordered {vocab}, the source's classes {source.classes}")
    precision = 'fp32' if probe else mixed_precision(learn, cfg.precision)
    history, fit = History(), (lambda l, c, cbs: l.fit_one_cycle(c.epochs, c.lr, cbs=cbs)) if probe else STRATEGIES[cfg.strategy]
    key = cfg.key(dataset)  # a folder dataset's files hashed once per run, by the resolved `Dataset`
    ckpt = None if probe else Checkpoint(cache_dir('checkpoints', key), key, history)  # a probe retrains in seconds
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*upsample_bicubic2d.*')
        learn.path, start = Path(tmp), time.time()
        with learn.no_bar() if not sys.stdout.isatty() else nullcontext():  # logs get one line per epoch, not a bar per batch
            fit(learn, cfg, _callbacks(cfg, history) + ([ckpt] if ckpt else []))
        train_seconds = time.time() - start + (ckpt.seconds_before if ckpt else 0.)
    test, test_tta, preds = _evaluate(learn, tdl, list(source.classes), _tta_dl(cfg, source, arch, tdl) if cfg.tta and not probe else None)
    counts = np.bincount(source.labels[train_idx], minlength=len(source.classes))
    record = Record(version=SCHEMA_VERSION, key=key, config=asdict(cfg), vocab=list(source.classes),
                    data_id=dataset.ident, n_train=len(train_idx), n_train_per_class=dict(zip(source.classes, counts.tolist())),
                    n_valid=len(source.idx('valid')), n_test=len(source.idx('test')),
                    normalization=dict(zip(('mean', 'std'), map(list, norm_stats(arch)))), history=history.epochs,
                    best_epoch=_best_epoch(cfg, history), test=test, test_tta=test_tta, predictions=preds, hyperparams=_hyperparams(cfg, learn, history, precision),
                    train_path='cached-features' if probe else 'end-to-end', train_seconds=train_seconds, **extra,
                    arch=asdict(arch), params=sum(p.numel() for p in learn.model.parameters()), env=_env(device),
                    notes=[f'resumed after epoch {ckpt.resumed_after} from a checkpoint'] if ckpt and ckpt.resumed_after else [])
    record.validate()
    if ckpt: ckpt.clear()
    return learn, record

def run(cfg: Config, device=None) -> Record:
    "The record of `cfg` (see `train`), the learner dropped"
    return train(cfg, device)[1]

def export(learn, path) -> Path:
    "Export `learn` with fastai's `export` (reload with `load_learner`; it predicts on file paths, PIL images and arrays)"
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    learn.path = path.parent
    learn.export(path.name)
    return path

def probe_head_file(models, key) -> Path: return Path(models)/f'{key}.head.pt'

def probe_as_model(cfg: Config, head: dict):
    "A cached-feature probe as a whole `Learner`: the frozen pretrained backbone with the probe's trained linear head (`head`)"
    learn, _ = build_learner(cfg)
    learn.model[1][-1].load_state_dict(head)  # the pooled features are the head's input in both
    return learn

def run_config(cfg: Config, models=None):
    """Train one config; keep its learner under `models` when given (a cached-feature probe keeps only its head, a few KB:
    `probe_as_model` rebuilds the whole model where one is needed)"""
    learn, rec = train(cfg)
    if models is not None and rec.train_path == 'end-to-end': export(learn, Path(models)/f'{rec.key}.pkl')  # the key train computed
    elif models is not None: write_atomic(probe_head_file(models, rec.key), lambda t: torch.save(learn.model[0].state_dict(), t))
    return rec
