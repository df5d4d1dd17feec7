"Training losses by name: cross-entropy (optionally class-weighted) and an ordinal-aware soft-label cross-entropy"
from __future__ import annotations
import torch, torch.nn.functional as F
from torch import nn
from fastai.vision.all import CrossEntropyLossFlat

__all__ = ['LOSSES', 'OrdinalSoftLabels', 'make_loss', 'describe_loss']

class OrdinalSoftLabels(nn.Module):
    """Cross-entropy against soft labels that spread each target over its neighbouring levels, q_j ∝ exp(-scale (j-k)²) for
    target level k (SORD: Díaz & Marathe, CVPR 2019): a miss by one level costs less than a miss by three"""
    def __init__(self, n_classes: int, scale: float = 2.0, weight=None, reduction='mean'):
        super().__init__()
        self.n_classes, self.scale, self.weight, self.reduction = n_classes, scale, weight, reduction
    def soft_labels(self, targ):
        "Each target's soft label over the ordered classes"
        d = torch.arange(self.n_classes, device=targ.device)[None] - targ[:, None]
        return torch.softmax(-self.scale*d.float()**2, 1)
    def forward(self, out, targ):
        loss = -(self.soft_labels(targ)*F.log_softmax(out.float(), 1)).sum(1)
        if self.weight is not None: loss = loss*self.weight.to(loss.device)[targ]
        return loss.mean() if self.reduction == 'mean' else loss.sum() if self.reduction == 'sum' else loss
    def activation(self, x): return F.softmax(x, -1)
    def decodes(self, x): return x.argmax(-1)

# name -> (the loss of n classes with optional class weights, what it does in words)
LOSSES = {
    'cross-entropy': (lambda n, weight: CrossEntropyLossFlat(weight=weight), 'cross-entropy'),
    'ordinal': (lambda n, weight: OrdinalSoftLabels(n, weight=weight),
                'cross-entropy against ordinal soft labels (each level spread over its neighbours, SORD)'),
}

def make_loss(name: str, n_classes: int, weight=None):
    "The loss `name` for `n_classes` classes, weighted per class by `weight` when given"
    return LOSSES[name][0](n_classes, weight)

def describe_loss(loss_func) -> dict:
    "What a learner's loss is, with its settings and class weights, read off the object"
    inner = getattr(loss_func, 'func', loss_func)
    weight = getattr(inner, 'weight', None)
    d = dict(name='ordinal', scale=loss_func.scale) if isinstance(loss_func, OrdinalSoftLabels) else dict(name='cross-entropy')
    return dict(**d, description=LOSSES[d['name']][1], class_weights=weight.tolist() if weight is not None else None)
