"Callbacks of an ftl run: the history and schedule recorder, per-epoch checkpoints, plain channels_last tensors, bfloat16 autocast on the CPU"
from __future__ import annotations
import os, random, time, numpy as np, torch
from pathlib import Path
from fastai.vision.all import Callback, ParamScheduler, CancelEpochException, to_device
from fastai.callback.fp16 import MixedPrecision
from fastcore.foundation import L
from torch.amp import GradScaler

__all__ = ['History', 'Checkpoint', 'PlainTensors', 'CPUBFloat16', 'mixed_precision']

def _schedule(sched: ParamScheduler | None, n_groups: int) -> dict:
    "The stage's learning-rate and momentum schedule, read off fastai's live `ParamScheduler`"
    if sched is None or 'lr' not in sched.scheds: return dict(schedule='constant')
    pct = np.linspace(0, 1, 10001)
    at = lambda i: np.broadcast_to(np.asarray(sched.scheds['lr'](pct[i]), float), (n_groups,))
    coarse = max(range(0, 10001, 100), key=lambda i: at(i)[-1])  # the peak of a one-cycle (one hump) on every 100th point, then
    top = max(range(max(0, coarse - 100), min(10000, coarse + 100) + 1), key=lambda i: at(i)[-1])  # every point near it: ~300 calls, not 10001
    lr = np.stack([at(0), at(top), at(10000)])
    mom = sched.scheds.get('mom')
    return dict(schedule='one-cycle (cosine warm-up, cosine annealing)', start_lr=lr[0].tolist(), peak_lr=lr[1].tolist(),
                final_lr=lr[-1].tolist(), pct_start=round(float(pct[top]), 4), div=float(lr[1, -1]/lr[0, -1]),
                div_final=float(lr[1, -1]/lr[-1, -1]), moms=[float(mom(p)) for p in (0, pct[top], 1)] if mom else None)

class History(Callback):
    "Per-epoch metrics and, per fit (stage): the schedule fastai applies, the lr seen per batch, trainable groups"
    order = 62  # after the Recorder has logged the epoch and SaveModelCallback kept it, before EarlyStoppingCallback may end the fit
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

CHECKPOINT_SECONDS = float(os.environ.get('FTL_CHECKPOINT_SECONDS', 30))  # at most this much training is lost to a stop

class Checkpoint(Callback):
    """The run's whole state in `folder` after every epoch and every fit (weights, optimizer, the best weights kept so far,
    history, random states), and a resume from it: the epochs it holds are replayed from their recorded metrics, without
    training, so fastai's schedulers, early stopping and best-epoch tracking take the path they took; at the point where
    the state was saved it is put back, and training goes on"""
    order = 62.5  # after History, before EarlyStoppingCallback may end the fit (which skips the later callbacks' after_epoch)
    def __init__(self, folder, key: str, history: History, best='best', every: float = None):
        self.file, self.key, self.history, self.best = Path(folder)/'state.pt', key, history, best
        self.every = CHECKPOINT_SECONDS if every is None else every  # seconds of training between saves: a run of seconds saves nothing
        self.saved = torch.load(self.file, map_location='cpu', weights_only=False) if self.file.exists() else None  # ftl's own file
        if self.saved and self.saved['key'] != key: raise RuntimeError(f"checkpoint {self.file} is of run {self.saved['key']}, not {key}")
        self.rows, self.n_seen, self.t0 = [], 0, time.time()  # the Recorder's row of every epoch so far; epochs begun, across fits
        self.t_saved = self.t0
    @property
    def resumed_after(self) -> int: return self.saved['n_epochs'] if self.saved else 0
    @property
    def seconds_before(self) -> float: return self.saved['seconds'] if self.saved else 0.
    @property
    def replaying(self) -> bool: return self.saved is not None and not self.saved.get('restored')
    def before_epoch(self):
        self.n_seen += 1
        if self.replaying and self.n_seen <= self.saved['n_epochs']: raise CancelEpochException
    def after_cancel_epoch(self):
        "A replayed epoch: the Recorder logs its saved metrics, so the trackers and History read them as if it had trained"
        row = self.saved['rows'][self.n_seen - 1]
        if (self.saved['history'][self.n_seen - 1]['stage'] != len(self.history.stages)
                or len(row) != len(self.recorder.metric_names) - 2):  # the names hold 'epoch' and 'time' besides the row's values
            raise RuntimeError(f"checkpoint {self.file} does not match this run's stages or metrics: delete its folder to start the run afresh")
        self.recorder.log = self.recorder.log[:1] + list(row)
    def _due(self) -> bool: return not self.replaying and time.time() - self.t_saved >= self.every
    def after_epoch(self):
        self.rows.append(list(map(float, self.recorder.values[-1])))
        if self._due(): self.save('epoch')
        elif self.replaying and self.n_seen == self.saved['n_epochs'] and self.saved['at'] == 'epoch': self.restore()
    def after_fit(self):
        if self._due(): self.save('fit')
        elif self.replaying and self.n_seen == self.saved['n_epochs'] and self.saved['at'] == 'fit': self.restore()
    def _best_file(self) -> Path: return self.learn.path/self.learn.model_dir/f'{self.best}.pth'
    def save(self, at: str):
        "Write the state atomically: a run killed while writing keeps its previous checkpoint"
        best = self._best_file()
        state = dict(key=self.key, at=at, n_epochs=self.n_seen, rows=self.rows, history=self.history.epochs, stages=self.history.stages,
                     smooth_loss=(self.recorder.smooth_loss.count, self.recorder.smooth_loss.val),  # the Recorder's train_loss runs across epochs
                     model=self.learn.model.state_dict(), opt=self.learn.opt.state_dict(), best=best.read_bytes() if best.exists() else None,
                     rng=dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate(),
                              dls=[dl.rng.getstate() for dl in self.learn.dls.loaders]),
                     seconds=self.seconds_before + time.time() - self.t0)
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(f'.tmp{os.getpid()}')
        torch.save(state, tmp); os.replace(tmp, self.file)
        self.t_saved = time.time()
    def restore(self):
        "Put the saved state back where it was saved: weights, optimizer, best weights, history, random states"
        s = self.saved
        self.learn.model.load_state_dict(s['model']); self.learn.opt.load_state_dict(to_device(s['opt'], self.dls.device))
        if s['best'] is not None: self._best_file().parent.mkdir(parents=True, exist_ok=True); self._best_file().write_bytes(s['best'])
        self.history.epochs, self.history.stages, self.rows = s['history'], s['stages'], s['rows']
        self.recorder.smooth_loss.count, self.recorder.smooth_loss.val = s['smooth_loss']
        torch.set_rng_state(s['rng']['torch']); np.random.set_state(s['rng']['numpy']); random.setstate(s['rng']['python'])
        for dl, st in zip(self.learn.dls.loaders, s['rng']['dls']): dl.rng.setstate(st)
        s['restored'] = True
        print(f"resumed {self.key} after epoch {s['n_epochs']} from {self.file}", flush=True)
    def clear(self):
        "Remove the checkpoint (the run's record holds everything now)"
        if self.file.exists(): self.file.unlink()
        try: self.file.parent.rmdir()
        except OSError: pass

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

class CPUBFloat16(MixedPrecision):
    "fastai's `MixedPrecision` in bfloat16 with the CPU's autocast (fastai's own autocasts CUDA only); no loss scaling"
    def before_fit(self): self.autocast, self.learn.scaler, self.scales = torch.autocast('cpu', dtype=torch.bfloat16), GradScaler('cpu', enabled=False), L()

def mixed_precision(learn, precision: str) -> str:
    "Put `learn` in `precision` ('auto': fp16 where CUDA exists); returns the precision it will train in"
    cuda = learn.dls.device.type == 'cuda'
    if precision == 'auto' and cuda: learn.to_fp16(); return 'fp16'
    if precision == 'bf16': learn.to_bf16() if cuda else learn.add_cb(CPUBFloat16(amp_mode='bf16')); return 'bf16'
    return 'fp32'
