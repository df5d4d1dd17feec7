"Callbacks of an ftl run: the history and schedule recorder, plain channels_last tensors, bfloat16 autocast on the CPU"
from __future__ import annotations
import numpy as np, torch
from fastai.vision.all import Callback, ParamScheduler
from fastai.callback.fp16 import MixedPrecision
from fastcore.foundation import L
from torch.amp import GradScaler

__all__ = ['History', 'PlainTensors', 'CPUBFloat16', 'mixed_precision']

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

class CPUBFloat16(MixedPrecision):
    "fastai's `MixedPrecision` in bfloat16 with the CPU's autocast (fastai's own autocasts CUDA only); no loss scaling"
    def before_fit(self): self.autocast, self.learn.scaler, self.scales = torch.autocast('cpu', dtype=torch.bfloat16), GradScaler('cpu', enabled=False), L()

def mixed_precision(learn, precision: str) -> str:
    "Put `learn` in `precision` ('auto': fp16 where CUDA exists); returns the precision it will train in"
    cuda = learn.dls.device.type == 'cuda'
    if precision == 'auto' and cuda: learn.to_fp16(); return 'fp16'
    if precision == 'bf16': learn.to_bf16() if cuda else learn.add_cb(CPUBFloat16(amp_mode='bf16')); return 'bf16'
    return 'fp32'
