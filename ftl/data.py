"Data sources decoded once to uint8 arrays, stratified subset splitters and the fastai `DataBlock` over them"
from __future__ import annotations
import hashlib, importlib.util, os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np, pandas as pd, torch
from PIL import Image
from sklearn.model_selection import train_test_split
from fastai.vision.all import (DataBlock, TransformBlock, CategoryBlock, IntToFloatTensor, Normalize, TensorImage,
                               ItemGetter, aug_transforms, get_image_files)

__all__ = ['Source', 'load_source', 'cache_dir', 'stratified_split', 'subset_indices', 'StratifiedSubsetSplitter',
           'source_items', 'make_datablock', 'make_dls', 'labelled_test_dl', 'SPLIT_SEED', 'SOURCES']

SPLIT_SEED = 20240601  # fixes the train/val/test split of every source without an official one
ELPV_CLASSES = ['functional', 'possibly-defective', 'likely-defective', 'defective']  # defect probability 0, 1/3, 2/3, 1
SOURCES = "'elpv', 'elpv-binary', 'medmnist:<flag>' (e.g. medmnist:pathmnist), 'folder:<path>', 'synthetic'"

def cache_dir(*sub) -> Path:
    "ftl's cache folder (`$FTL_CACHE`, default `~/.cache/ftl`), created on demand"
    p = Path(os.environ.get('FTL_CACHE', Path.home()/'.cache'/'ftl')).expanduser().joinpath(*sub)
    p.mkdir(parents=True, exist_ok=True)
    return p

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

def stratified_split(labels, fracs=(0.7, 0.15, 0.15), seed=SPLIT_SEED) -> np.ndarray:
    "Split names ('train'/'valid'/'test') for `labels`, stratified with proportions `fracs`"
    idx = np.arange(len(labels))
    tr, rest = train_test_split(idx, train_size=fracs[0], stratify=labels, random_state=seed)
    va, te = train_test_split(rest, train_size=fracs[1]/(fracs[1]+fracs[2]), stratify=labels[rest], random_state=seed)
    split = np.empty(len(labels), dtype=object)
    split[tr], split[va], split[te] = 'train', 'valid', 'test'
    return split.astype(str)

def _resize(img: Image.Image, size: int) -> np.ndarray:
    "Square uint8 array of `img` at `size` (grayscale stays one channel, everything else RGB)"
    img = img.convert('L' if img.mode in ('L', 'I', 'I;16', '1') else 'RGB')
    if img.size != (size, size): img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)

def _package_dir(pkg, pip_name):
    "Folder of an installed package, found without importing it"
    spec = importlib.util.find_spec(pkg)
    if spec is None: raise FileNotFoundError(f"Package {pip_name!r} is not installed: `pip install {pip_name}` (it is in requirements.txt)")
    return Path(list(spec.submodule_search_locations)[0])

def _cached(key, build):
    "Load the arrays cached under `key`, or `build()` them and cache them"
    fn = cache_dir('data')/f'{key}.npz'
    if fn.exists():
        with np.load(fn, allow_pickle=False) as z: return {k: z[k] for k in z.files}
    arrays = build()
    tmp = fn.with_suffix('.tmp.npz')
    np.savez(tmp, **arrays); os.replace(tmp, fn)
    return arrays

def _elpv(size, binary=False):
    "ELPV solar cells (`elpv-dataset` package): 4 defect levels, or functional vs defective"
    root = _package_dir('elpv_dataset', 'elpv-dataset')/'data'
    df = pd.read_csv(root/'labels.csv', sep=r'\s+', header=None, names=['path', 'probability', 'type'])
    def build(): return dict(images=np.stack([_resize(Image.open(root/p), size) for p in df.path]))
    images = _cached(f'elpv-{size}', build)['images']
    level = np.rint(df.probability.values*3).astype(int)
    labels, classes = ((level > 0).astype(int), ['functional', 'defective']) if binary else (level, ELPV_CLASSES)
    return Source('elpv-binary' if binary else 'elpv', images, labels, classes, stratified_split(labels),
                  dict(ids=df.path.str.replace('images/', '').values, cell_type=df.type.values, split_seed=SPLIT_SEED,
                       split_fracs=(0.7, 0.15, 0.15), license='CC-BY-NC-SA-4.0'))

def _medmnist_root(): return Path(os.environ.get('MEDMNIST_ROOT', Path.home()/'.medmnist')).expanduser()

def _download_medmnist(info, root, size):
    "Fetch a MedMNIST `.npz` with medmnist's own downloader (needs a network)"
    import medmnist
    root.mkdir(parents=True, exist_ok=True)
    getattr(medmnist, info['python_class'])(split='test', root=str(root), size=size, download=True)

def _medmnist(flag, size):
    "A 2D MedMNIST dataset from its `.npz` (official splits); downloaded only when missing and a network exists"
    import medmnist
    if flag not in medmnist.INFO: raise ValueError(f"Unknown MedMNIST flag {flag!r}; choose one of {sorted(medmnist.INFO)}")
    info = medmnist.INFO[flag]
    if info['task'] not in ('multi-class', 'binary-class', 'ordinal-regression') or '3d' in flag:
        raise ValueError(f"MedMNIST {flag!r} is a {info['task']} task; ftl classifies 2D single-label images")
    npz_size = next((s for s in (28, 64, 128, 224) if s >= size), 224)
    root = _medmnist_root()
    fn = root/(f'{flag}.npz' if npz_size == 28 else f'{flag}_{npz_size}.npz')
    if not fn.exists():
        try: _download_medmnist(info, root, npz_size)
        except Exception as e:
            raise FileNotFoundError(f"MedMNIST file {fn} is missing and could not be downloaded ({type(e).__name__}). "
                                    f"Put {fn.name} (from {info.get('url', 'zenodo.org/records/10519652')}) in {root}, "
                                    f"or set MEDMNIST_ROOT to the folder that holds it.") from None
    with np.load(fn) as z:
        parts = [(s, z[f'{s}_images'], z[f'{s}_labels'].reshape(-1)) for s in ('train', 'val', 'test')]
    imgs = np.concatenate([p[1] for p in parts])
    if npz_size != size: imgs = np.stack([_resize(Image.fromarray(a), size) for a in imgs])
    split = np.concatenate([np.full(len(p[1]), {'val': 'valid'}.get(p[0], p[0])) for p in parts])
    classes = [info['label'][str(i)] for i in range(len(info['label']))]
    return Source(f'medmnist:{flag}', imgs, np.concatenate([p[2] for p in parts]).astype(int), classes, split,
                  dict(ids=np.array([f'{s}_{i}' for s, a, _ in parts for i in range(len(a))]), file=str(fn)))

def _folder(path, size):
    "ImageNet-style class folders: `train/valid|val/test` subfolders when present, else a stratified 80/10/10 split"
    path = Path(path).expanduser()
    if not path.is_dir(): raise FileNotFoundError(f"Image folder {path} does not exist; pass folder:<path to class folders>")
    files = get_image_files(path)
    if not files: raise FileNotFoundError(f"No images under {path}; expected <path>/<class>/<image> or <path>/train/<class>/<image>")
    split_names = {'train': 'train', 'valid': 'valid', 'val': 'valid', 'test': 'test'}
    has_splits = {f.relative_to(path).parts[0] for f in files} <= set(split_names)
    classes = sorted({f.parent.name for f in files})
    key = hashlib.sha1(f'{path.resolve()}|{len(files)}|{max(f.stat().st_mtime for f in files)}'.encode()).hexdigest()[:12]
    def build(): return dict(images=np.stack([_resize(Image.open(f), size) for f in files]))
    images = _cached(f'folder-{key}-{size}', build)['images']
    labels = np.array([classes.index(f.parent.name) for f in files])
    split = (np.array([split_names[f.relative_to(path).parts[0]] for f in files]) if has_splits
             else stratified_split(labels, (0.8, 0.1, 0.1)))
    return Source(f'folder:{path}', images, labels, classes, split, dict(ids=np.array([str(f.relative_to(path)) for f in files])))

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
                  dict(ids=np.array([f'syn{i:04d}' for i in range(len(labels))])))

def load_source(name: str, size: int) -> Source:
    "The dataset called `name` decoded at `size` x `size` pixels"
    if name in ('elpv', 'elpv-binary'): return _elpv(size, binary=name == 'elpv-binary')
    if name.startswith('medmnist:'): return _medmnist(name.split(':', 1)[1], size)
    if name.startswith('folder:'): return _folder(name.split(':', 1)[1], size)
    if name == 'synthetic': return _synthetic(size)
    raise ValueError(f"Unknown dataset {name!r}; use one of {SOURCES}")

def subset_indices(labels, train_idx, fraction: float, seed: int, classes=None) -> np.ndarray:
    "A stratified `fraction` of `train_idx`, nested across fractions for one `seed`, with every class kept"
    if not 0 < fraction <= 1: raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    train_idx = np.asarray(train_idx); lbl = np.asarray(labels)[train_idx]
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(lbl):
        members = rng.permutation(train_idx[lbl == c])  # one fixed order per class and seed: smaller subsets are prefixes
        n = int(round(fraction*len(members)))
        if n < 1:
            name = classes[c] if classes is not None else c
            raise ValueError(f"fraction={fraction} leaves class {name!r} empty ({len(members)} training images of it); "
                             f"use a fraction of at least {1/(2*len(members)):.3g}")
        keep.append(members[:n])
    return np.sort(np.concatenate(keep))

class StratifiedSubsetSplitter:
    "fastai splitter: a stratified, nested `fraction` of the training split, and the full validation split"
    def __init__(self, source: Source, fraction=1.0, seed=0):
        self.train = subset_indices(source.labels, source.idx('train'), fraction, seed, source.classes)
        self.valid = source.idx('valid')
    def __call__(self, items): return list(self.train), list(self.valid)

def tensor_image(a) -> TensorImage:
    "A uint8 HxW or HxWxC array as a 3-channel CHW `TensorImage`"
    t = torch.from_numpy(np.ascontiguousarray(a))
    return TensorImage((t[None].expand(3, -1, -1) if t.ndim == 2 else t.permute(2, 0, 1)).contiguous())

def source_items(source: Source, idx=None) -> list:
    "(image array, class name) pairs, the items every ftl DataBlock consumes"
    idx = range(len(source.labels)) if idx is None else idx
    return [(source.images[i], source.classes[source.labels[i]]) for i in idx]

def make_datablock(source: Source, fraction=1.0, seed=0, stats=((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                   augment=None) -> DataBlock:
    "A `DataBlock` over `source` items: stratified subset splitter, explicit normalisation, optional augmentation"
    aug = list(augment or [])
    return DataBlock(blocks=(TransformBlock(type_tfms=tensor_image, batch_tfms=IntToFloatTensor), CategoryBlock(vocab=source.classes, sort=False)),  # fastai sorts a given vocab by default
                     get_x=ItemGetter(0), get_y=ItemGetter(1), splitter=StratifiedSubsetSplitter(source, fraction, seed),
                     batch_tfms=[*aug, Normalize.from_stats(*stats)])

def make_dls(source: Source, fraction=1.0, seed=0, bs=64, stats=None, augment=None, device=None, num_workers=0):
    "fastai `DataLoaders` (train subset, full validation) for `source`"
    dblock = make_datablock(source, fraction, seed, stats or ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), augment)
    return dblock.dataloaders(source_items(source), bs=bs, device=device, num_workers=num_workers)

def labelled_test_dl(dls, source: Source):
    "The labelled test split as a `DataLoader` with the validation pipeline (never augmented)"
    return dls.test_dl(source_items(source, source.idx('test')), with_labels=True)
