"Cached-feature fast path for linear probes: frozen-backbone features computed once per configuration, a linear head on them"
from __future__ import annotations
import hashlib
from pathlib import Path
import numpy as np, torch
from torch import nn
from fastai.vision.all import DataLoaders, DataLoader, Learner, CrossEntropyLossFlat
from .data import source_items
from .files import cache_dir, write_atomic

__all__ = ['cached_path_applies', 'feature_key', 'feature_file', 'pooled_features', 'backbone_features', 'cached_features', 'feature_learner']

def cached_path_applies(cfg) -> bool:
    "True where training only a linear head on a frozen, un-augmented, pretrained backbone (features never change)"
    return cfg.strategy == 'feature-extraction' and cfg.augment == 'none' and not cfg.mixup and cfg.head == 'linear' and cfg.pretrained

def feature_key(arch, weights_id, size, source) -> str:
    "Cache key of one (architecture, weights, image size, dataset content) combination"
    h = hashlib.sha1()
    for part in (arch, weights_id, str(size), source.name, str(source.images.shape)): h.update(part.encode())
    store = getattr(source.images, 'filename', None)  # a decoded-image store is named by its content (ftl.store): no need to read it all
    h.update(str(store).encode() if store else np.ascontiguousarray(source.images).data)  # else the decoded pixels themselves
    h.update(np.ascontiguousarray(source.labels).data)
    return h.hexdigest()[:16]

@torch.no_grad()
def pooled_features(learn, dl) -> torch.Tensor:
    "Pooled features of the learner's body (eval mode) for every batch of `dl`: the head's input"
    body, out = learn.model[0].eval(), []
    for xb, *_ in dl:
        f = body(xb.as_subclass(torch.Tensor))
        out.append((f.mean((2, 3)) if f.ndim == 4 else f).float().cpu())
    return torch.cat(out)

def backbone_features(learn, source, bs=128) -> np.ndarray:
    "Pooled features of the learner's frozen body for every image of `source`, through its own pipeline"
    return pooled_features(learn, learn.dls.test_dl(source_items(source), with_labels=False, bs=bs)).numpy()

def feature_file(arch, weights_id, size, source) -> Path:
    "Where the backbone features of one (architecture, weights, size, dataset content) combination are cached"
    return cache_dir('features')/f'{arch}-{feature_key(arch, weights_id, size, source)}.npy'

def cached_features(arch, weights_id, size, source, make_learner) -> tuple:
    "Backbone features of every image, from the cache when this exact configuration was seen, else `make_learner()`'s, cached"
    fn = feature_file(arch, weights_id, size, source)
    if fn.exists(): return np.load(fn), True
    feats = backbone_features(make_learner(), source)
    write_atomic(fn, lambda tmp: np.save(tmp, feats))
    return feats, False

def _dl(x, y, bs, shuffle, device):
    return DataLoader(list(zip(torch.from_numpy(x), torch.from_numpy(y))), bs=bs, shuffle=shuffle, drop_last=shuffle and len(x) > bs,
                      device=device)

def feature_learner(feats, source, train_idx, bs, metrics, device=None, loss_func=None) -> tuple:
    "A fastai `Learner` of one linear layer on cached features (train subset / full validation), and the test `DataLoader`"
    y = source.labels.astype(np.int64)
    dls = DataLoaders(_dl(feats[train_idx], y[train_idx], bs, True, device),
                      _dl(feats[source.idx('valid')], y[source.idx('valid')], bs, False, device), device=device)
    head = nn.Linear(feats.shape[1], len(source.classes))
    nn.init.kaiming_normal_(head.weight); nn.init.zeros_(head.bias)
    learn = Learner(dls, nn.Sequential(head), loss_func=loss_func or CrossEntropyLossFlat(), metrics=metrics,
                    splitter=lambda m: [list(m.parameters())])
    return learn, _dl(feats[source.idx('test')], y[source.idx('test')], bs, False, device)
