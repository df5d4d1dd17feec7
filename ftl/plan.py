"""What a suite will cost before it runs: optimizer steps and validation passes timed on this host (cached per host and
torch version), times the steps each pending run takes at most, corrected by this host's records of the same setting"""
from __future__ import annotations
import hashlib, json, math, os, platform, tempfile, time
from dataclasses import dataclass, replace
from pathlib import Path
import numpy as np, pandas as pd, torch
from fastai.vision.all import Callback, CancelTrainException, CancelFitException, find_bs
from .config import Config
from .data import subset_indices, load_source
from .features import cached_path_applies, feature_file
from .models import weights_id
from .records import read_records
from .files import cache_dir, write_atomic
from .train import build_learner, mixed_precision, cpu_bf16_flags
from .callbacks import Checkpoint, History, CHECKPOINT_SECONDS
from .strategies import N_GROUPS

__all__ = ['Estimate', 'host_id', 'calibrate', 'estimate', 'Progress', 'keep_plan', 'PLAN_FILE']

def host_id() -> str:
    "This host's speed class: CPU model, bf16 instructions, cores, torch threads, GPU and torch version"
    try: cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    except OSError: cpu = platform.processor()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'
    return ' | '.join([cpu, cpu_bf16_flags(), f'{os.cpu_count()} cores', f'{torch.get_num_threads()} threads', gpu, f'torch {torch.__version__}'])

def setting(cfg: Config, mode: str) -> tuple:
    "What a step's speed depends on: architecture, size, precision, batch, augmentation, frozen body, image channels"
    return (cfg.arch, cfg.size, cfg.precision, cfg.bs, cfg.augment, cfg.strategy == 'feature-extraction', mode)

class StepTimer(Callback):
    "Time `warmup + n` training batches (loading included), then as many validation batches, then stop the fit"
    order = 99
    def __init__(self, warmup=2, n=3): self.warmup, self.n, self.times = warmup, n, {True: [], False: []}
    def before_epoch(self): self.last = time.perf_counter()
    def before_validate(self): self.last = time.perf_counter()
    def after_batch(self):
        now, ts = time.perf_counter(), self.times[self.training]
        ts.append((now - self.last, find_bs(self.yb))); self.last = now
        if len(ts) >= self.warmup + self.n: raise (CancelTrainException if self.training else CancelFitException)()
    def per(self, training, unit) -> float:
        "Seconds per batch (unit 'batch') or per image (unit 'image'), warm-up batches left out where there are more"
        ts = self.times[training]; ts = ts[self.warmup:] if len(ts) > self.warmup else ts
        return sum(t for t, _ in ts)/max(1, len(ts) if unit == 'batch' else sum(b for _, b in ts))

def _measure(cfg: Config, source) -> dict:
    "Seconds to build the learner, per training step and per evaluated image, on this host, for `cfg`'s setting"
    start = time.perf_counter()
    learn, _ = build_learner(replace(cfg, pretrained=False), source)  # a step's speed does not depend on the weights
    build = time.perf_counter() - start
    learn.freeze() if cfg.strategy == 'feature-extraction' else learn.unfreeze()
    mixed_precision(learn, cfg.precision)
    timer = StepTimer()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, cfg.lr, cbs=timer)
    with tempfile.TemporaryDirectory() as tmp:  # the state an end-to-end run saves (once every CHECKPOINT_SECONDS)
        ckpt = Checkpoint(tmp, 'plan', History()); ckpt.learn = learn
        start = time.perf_counter(); ckpt.save('epoch'); save = time.perf_counter() - start
    first = sum(t for t, _ in timer.times[True][:timer.warmup])  # a fit's first batches: kernels chosen, buffers allocated
    return dict(build=build, step=timer.per(True, 'batch'), eval_image=timer.per(False, 'image'), epoch_save=save,
                warmup=max(0., first - timer.warmup*timer.per(True, 'batch')))

def _cache_file(): return cache_dir('plan')/f"{hashlib.sha1(host_id().encode()).hexdigest()[:12]}.json"

def calibrate(cfgs, sources: dict, measure=True) -> dict:
    "setting -> timings for every setting of `cfgs`, measured once per host (cached in $FTL_CACHE/plan); `measure=False`: the cached ones"
    fn = _cache_file()
    cache = json.loads(fn.read_text()) if fn.exists() else {}
    for c in cfgs:
        src, timed = sources[c.dataset, c.size], _timed(c)
        k = json.dumps(setting(timed, src.mode))
        if k not in cache and measure:
            cache[k] = _measure(timed, src)
            write_atomic(fn, lambda tmp: tmp.write_text(json.dumps(cache, indent=1)))
    return {tuple(json.loads(k)): v for k, v in cache.items()}

def _timed(cfg: Config) -> Config:
    "The setting whose speed a run takes: a cached-feature probe's backbone extracts its features in fp32"
    return replace(cfg, precision='fp32') if cached_path_applies(cfg) else cfg

def fit_seconds(t: dict, cfg: Config, n_train: int, n_valid: int, epochs: int) -> float:
    """Seconds of a run's fits: each epoch's optimizer steps and validation pass (and best weights saved, where validation
    picks the epoch), each fit's first batches, and the whole state saved once every `CHECKPOINT_SECONDS` of training"""
    fits = {'fine-tune': 2, 'gradual-unfreeze': N_GROUPS}.get(cfg.strategy, 1)
    best = t['epoch_save']/4 if cfg.monitor != 'last' else 0.  # the best weights: a quarter of the state (weights, two moments, best)
    work = epochs*(math.ceil(n_train/cfg.bs)*t['step'] + n_valid*t['eval_image'] + best) + fits*t['warmup']
    saves = min(epochs + fits, int(work//CHECKPOINT_SECONDS) if CHECKPOINT_SECONDS > 0 else epochs + fits)
    return work + saves*t['epoch_save']

@dataclass
class Estimate:
    "One pending run's estimated seconds: its fit (at most its epochs), and the run around it (learner, features, final predictions)"
    cfg: Config
    fit: float
    other: float
    factor: float = 1.0      # this host's records: median actual over estimated fit time (of the same setting where `own`)
    own: bool = False
    @property
    def seconds(self) -> float: return self.fit*self.factor + self.other

def _ratios(timings: dict, results) -> dict:
    "setting -> [actual / estimated fit seconds] over this host's end-to-end records (same bf16 instructions and threads)"
    out, here = {}, (cpu_bf16_flags(), torch.get_num_threads())
    for r in read_records(results) if results else []:
        if r.reused_from or r.train_path != 'end-to-end' or (r.env.get('cpu_bf16'), r.env.get('threads')) != here: continue
        c = Config(**r.config)
        t = next((v for k, v in timings.items() if k[:-1] == setting(c, '')[:-1]), None)
        if t: out.setdefault(setting(c, '')[:-1], []).append(r.train_seconds/fit_seconds(t, c, r.n_train, r.n_valid, len(r.history)))
    return out

def estimate(cfgs, results=None, measure=True) -> tuple:
    """(an `Estimate` per config, how far to trust them): this host's timings (measured where not cached, unless `measure` is
    False: then NaN), corrected by its records of the same setting; a probe's features counted once per model. Trust:
    estimated over actual fit time of those records before the correction (median, range, count)"""
    sources = {k: load_source(*k) for k in dict.fromkeys((c.dataset, c.size) for c in cfgs)}
    timings = calibrate(cfgs, sources, measure)
    ratios, seen, out = _ratios(timings, results), set(), []
    every = [x for v in ratios.values() for x in v]
    for c in cfgs:
        src = sources[c.dataset, c.size]
        if (t := timings.get(setting(_timed(c), src.mode))) is None: out.append(Estimate(c, math.nan, math.nan)); continue
        n_valid, n_test = len(src.idx('valid')), len(src.idx('test'))
        if cached_path_applies(c):  # the backbone's features of every image once per model (unless cached); its head trains in seconds
            f = feature_file(c.arch, weights_id(c.arch), c.size, src)
            first = not f.exists() and f not in seen; seen.add(f)
            out.append(Estimate(c, 0., t['build'] + (len(src.labels)*t['eval_image'] if first else 0.)))
            continue
        n_train = len(subset_indices(src.labels, src.idx('train'), c.fraction, c.seed, src.classes))
        r = ratios.get(setting(c, '')[:-1], []) or every  # this setting's records, else all of this host's (the timings' load is shared)
        out.append(Estimate(c, fit_seconds(t, c, n_train, n_valid, c.epochs), t['build'] + (n_valid + n_test)*t['eval_image'],
                            float(np.median(r)) if r else 1.0, own=bool(ratios.get(setting(c, '')[:-1]))))
    inv = [1/x for x in every]
    return out, dict(n=len(inv), median=float(np.median(inv)) if inv else float('nan'), lo=min(inv, default=float('nan')),
                     hi=max(inv, default=float('nan')))

class Progress:
    """After each finished run: runs done of the total and the minutes still estimated, rescaled by how the finished runs went
    (without this host's timings of every setting, each run counts the same)"""
    def __init__(self, ests, done_before=0, total=None):
        timed = all(math.isfinite(e.seconds) for e in ests)
        self.left = {e.cfg: e.seconds if timed else 1. for e in ests}  # configs are hashable: no key (a folder's files hashed) per run
        self.done, self.total, self.spent, self.planned = done_before, total or done_before + len(ests), 0., 0.
        self.start = time.time()
    def __call__(self, cfg) -> str:
        self.done += 1
        self.planned += self.left.pop(cfg, 0.)
        self.spent, self.start = self.spent + time.time() - self.start, time.time()
        scale = self.spent/self.planned if self.planned > 0 else 1.
        return f"{self.done}/{self.total} runs done, about {sum(self.left.values())*scale/60:.0f} min left"

PLAN_FILE = 'plan.csv'  # in a results folder: each run's estimate as first planned, before it ran (the report sets it beside the actual)

def keep_plan(results, rows) -> Path:
    "Add `rows` (suite, key, planned_min, host, planned_on) to the results folder's plan, keeping each key's first estimate"
    path = Path(results)/PLAN_FILE
    new = pd.DataFrame(rows, columns=['suite', 'key', 'planned_min', 'host', 'planned_on'])
    old = pd.read_csv(path) if path.exists() else new.iloc[:0]
    both = pd.concat([old, new[~new.key.isin(old.key)]], ignore_index=True)
    if len(both) != len(old) or not path.exists(): write_atomic(path, lambda t: both.to_csv(t, index=False, float_format='%.1f'))
    return path
