"""A dataset from arrays in a notebook: `ftl.from_arrays(x, y, classes=..., name=...)` keeps them in the cache under a name
that every process of this environment can load (`arrays:<name>`), decoded into the same store, identified by their content"""
from __future__ import annotations
import hashlib, json, re, shutil
from pathlib import Path
import numpy as np
from .errors import DataError, DatasetMissing
from .data import Source, DECODER, SPLIT_SEED, register_dataset, stratified_split, decoded_store
from .files import cache_dir, write_atomic

__all__ = ['from_arrays']

SPLITS = ('train', 'valid', 'test')

def _folder() -> Path: return cache_dir('arrays')

def _split_of(split, n) -> np.ndarray | None:
    "A split name per image from per-image names or a dict of index arrays (every image in exactly one), else None"
    if split is None: return None
    if isinstance(split, dict):
        if (bad := sorted(set(split) - {*SPLITS, 'val'})): raise DataError(f"from_arrays: split keys {bad}; allowed: train, valid (or val), test")
        out = np.full(n, '', dtype=object)
        for k, idx in split.items():
            idx = np.asarray(idx, dtype=int)
            if (out[idx] != '').any(): raise DataError(f"from_arrays: split {k!r} repeats images already in another split")
            out[idx] = 'valid' if k == 'val' else k
        if (out == '').any(): raise DataError(f"from_arrays: {int((out == '').sum())} images are in no split; give every index to train, valid or test")
        return out.astype(str)
    out = np.array(['valid' if s == 'val' else str(s) for s in split])
    if len(out) != n: raise DataError(f"from_arrays: split has {len(out)} entries for {n} images")
    if (bad := sorted(set(out.tolist()) - set(SPLITS))): raise DataError(f"from_arrays: split holds {bad}; allowed: train, valid (or val), test")
    return out

def from_arrays(x, y, classes=None, name='arrays', split=None, card=None) -> str:
    """Images `x` (N x H x W gray or N x H x W x 3 RGB, uint8 or uint16) with labels `y` (class indices into `classes`, or class
    names) as dataset 'arrays:<name>', usable as `Config(dataset=...)`; `split`: per-image 'train'/'valid'/'test' or a dict of
    index arrays (default: the stratified 80/10/10 split); `card`: a dataset card's path. Returns the dataset's name"""
    x, y = np.asarray(x), np.asarray(y)
    if not re.fullmatch(r'[A-Za-z0-9_.-]+', name): raise DataError(f"from_arrays: name {name!r} must be letters, digits, '_', '.' or '-'")
    if x.dtype not in (np.uint8, np.uint16): raise DataError(f"from_arrays: images are {x.dtype}; give uint8 or uint16 (e.g. (x*255).astype('uint8'))")
    if not (x.ndim == 3 or (x.ndim == 4 and x.shape[-1] in (1, 3))):
        raise DataError(f"from_arrays: images of shape {x.shape}; give N x H x W (gray) or N x H x W x 3 (RGB)")
    if y.ndim != 1 or len(y) != len(x): raise DataError(f"from_arrays: {len(x)} images but labels of shape {y.shape}; give one label per image")
    if y.dtype.kind in 'iu':
        classes = [str(c) for c in (classes if classes is not None else range(int(y.max()) + 1))]
        if y.min() < 0 or y.max() >= len(classes): raise DataError(f"from_arrays: labels run {y.min()}..{y.max()}, but there are {len(classes)} classes {classes}")
    else:
        names = sorted(set(map(str, y))) if classes is None else [str(c) for c in classes]
        if (bad := sorted(set(map(str, y)) - set(names))): raise DataError(f"from_arrays: labels {bad[:3]} are not among the classes {names}")
        classes, y = names, np.array([names.index(str(v)) for v in y])
    if len(set(y.tolist())) < 2: raise DataError(f"from_arrays: the labels hold one class ({classes[y[0]]!r}); a classifier needs at least two")
    parts = _split_of(split, len(x))
    h = hashlib.sha1()
    for part in (x.shape, x.dtype.str, classes, None if parts is None else parts.tolist()): h.update(json.dumps(part, default=str).encode())
    h.update(np.ascontiguousarray(x).data); h.update(np.ascontiguousarray(y, dtype=np.int64).data)
    fn = _folder()/f'{name}.npz'
    write_atomic(fn, lambda tmp: np.savez(tmp, images=x, labels=y, classes=np.array(classes), split=np.array([] if parts is None else parts),
                                          content=np.array(h.hexdigest()[:12])))
    if card is not None: shutil.copyfile(card, _folder()/f'{name}.md')
    elif (_folder()/f'{name}.md').exists(): (_folder()/f'{name}.md').unlink()
    return f'arrays:{name}'

def _file(name) -> Path:
    fn = _folder()/f'{name}.npz'
    if not fn.is_file():
        raise DatasetMissing(f"No arrays named {name!r} in {_folder()}: call ftl.from_arrays(x, y, name={name!r}) in this environment first")
    return fn

def _ident(name) -> str:
    with np.load(_file(name)) as z: return str(z['content'])

def _card(name) -> Path | None:
    p = _folder()/f'{name}.md'
    return p if p.is_file() else None

@register_dataset('arrays:<name>', 'arrays handed over in a notebook with ftl.from_arrays(x, y, name=<name>)', ident=_ident, card=_card)
def arrays(name, size, skip_bad=False):
    "The arrays saved by `from_arrays` under `name`, decoded at `size` into the store, in their split (else stratified 80/10/10)"
    with np.load(_file(name)) as z:
        x, labels, classes, split, content = z['images'], z['labels'], list(z['classes']), z['split'], str(z['content'])
    mode = 'RGB' if x.ndim == 4 and x.shape[-1] == 3 else 'L'
    images, _ = decoded_store(f'arrays-{content}-{DECODER}-{size}', x, size, mode)
    info = dict(split_kind='given with the arrays') if len(split) else dict(split_fracs=(0.8, 0.1, 0.1), split_seed=SPLIT_SEED)
    if not len(split): split = stratified_split(labels, info['split_fracs'], info['split_seed'], classes)
    for s in SPLITS:
        if (absent := sorted(set(range(len(classes))) - set(labels[split == s].tolist()))):
            raise DataError(f"Split {s} of arrays:{name} has no images of classes {[classes[i] for i in absent]}: every class needs images in every split")
    return Source(f'arrays:{name}', images, labels, classes, split, dict(ids=np.array([f'{name}_{i}' for i in range(len(labels))]), **info))
