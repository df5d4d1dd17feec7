"The dataset sources, each registered once: ELPV (facts in its card) and its derived tasks, MedMNIST, class folders, synthetic"
from __future__ import annotations
import hashlib, importlib.metadata, json, os, zipfile
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
import numpy as np, pandas as pd
from PIL import Image
from fastai.data.transforms import image_extensions
from .errors import DataError, DatasetMissing
from .data import (Source, CHUNK, DECODER, GRAY_MODES, SPLIT_SEED, register_dataset, find_dataset, resolve_dataset, load_source,
                   stratified_split, decoded_store, _package_dir)
from .cards import CARDS_DIR, Card, Task, parse_card, measured_card

__all__ = ['register_dataset', 'register_tasks', 'derive_task', 'load_card', 'card_of', 'tasks_of', 'folder_fingerprint', 'images_source']

TASK_BASE = {}  # registered task name -> the dataset it regroups

# --- derived tasks and cards -----------------------------------------------------------------------------------------------

def derive_task(source: Source, task: Task, name: str) -> Source:
    "`source` with its classes regrouped by `task.rule`; a split ftl stratified is stratified again on the new labels"
    missing = sorted({c for v in task.rule.values() for c in v} ^ set(source.classes))
    if missing: raise DataError(f"Task {task.name!r} groups classes {missing} that {source.name} lacks or leaves out: fix the rule")
    labels = np.array(task.new_index(source.classes))[source.labels]
    classes, info = list(task.rule), {**source.info, 'task': task.name, 'base': source.name, 'base_classes': source.classes}
    split = (stratified_split(labels, info['split_fracs'], info['split_seed'], classes) if 'split_fracs' in info else source.split)
    return Source(name, source.images, labels, classes, split, info)

def register_tasks(base: str):
    "Register '<base>-<task>' for every task that the card of the registered dataset `base` defines"
    e, _ = find_dataset(base)
    for t in parse_card(e.card(None)).tasks:
        def load(size, skip_bad=False, t=t.name, name=f'{base}-{t.name}'):
            return derive_task(load_source(base, size, skip_bad), load_card(base).task(t), name)
        register_dataset(f'{base}-{t.name}', f"task {t.name!r} of {base}" + (', retired' if t.retired else ''), card=e.card)(load)
        TASK_BASE[f'{base}-{t.name}'] = base

def load_card(dataset: str, card_path=None, source: Source = None) -> Card:
    "The card of `dataset`: from `card_path`, else its own card file, else measured from its images (`measured_only`)"
    if card_path is not None: return parse_card(card_path)
    if (p := resolve_dataset(dataset).card_path) is not None: return parse_card(p)
    return measured_card(source if source is not None else load_source(dataset, 32))

def card_of(source_or_name) -> Card:
    "The card of a `Source` (its classes checked against the card's) or of a dataset name"
    if isinstance(source_or_name, str): return load_card(source_or_name)
    src = source_or_name
    card = load_card(src.name, source=src)
    classes = src.info.get('base_classes', src.classes)
    if card.classes and list(card.classes) != list(classes):
        raise DataError(f"{card.path}: field 'classes' must list the dataset's classes in label order {list(classes)}, "
                        f"got {list(card.classes)}")
    return card

def tasks_of(name: str, retired=False) -> list:
    "Dataset names of the derived tasks the card of `name` defines ([] without a card); retired ones only when asked"
    e, arg = find_dataset(name)
    base = TASK_BASE.get(name, name.split('#')[0])
    if not e.card or (p := e.card(arg)) is None: return []
    tasks = [t for t in parse_card(p).tasks if retired or not t.retired]
    return [f'{base}#{t.name}' if e.prefix else f'{base}-{t.name}' for t in tasks]

# --- ELPV ------------------------------------------------------------------------------------------------------------------

def _elpv_card(arg=None) -> Path: return CARDS_DIR/'elpv.md'

@register_dataset('elpv', 'ELPV solar cells, four defect levels', card=_elpv_card)
def elpv(size, skip_bad=False):
    "ELPV solar cells (`elpv-dataset` package): one class per annotated defect probability (0, 1/3, 2/3, 1), named by its card"
    card, root = parse_card(_elpv_card()), _package_dir('elpv_dataset', 'elpv-dataset')/'data'
    df = pd.read_csv(root/'labels.csv', sep=r'\s+', header=None, names=['path', 'probability', 'type'])
    key = f"elpv-{importlib.metadata.version('elpv-dataset')}-{DECODER}-{size}"
    images, _ = decoded_store(key, [root/p for p in df.path], size, 'L')
    labels, fracs, seed = np.rint(df.probability.values*3).astype(int), card.split['stratified'], card.split['seed']
    return Source('elpv', images, labels, list(card.classes), stratified_split(labels, fracs, seed),
                  dict(ids=df.path.str.replace('images/', '').values, cell_type=df.type.values, split_seed=seed,
                       split_fracs=tuple(fracs), license=card.license, root=str(root), files=(root/df.path).astype(str).values))

register_tasks('elpv')

# --- MedMNIST --------------------------------------------------------------------------------------------------------------

def _medmnist_root(): return Path(os.environ.get('MEDMNIST_ROOT', Path.home()/'.medmnist')).expanduser()

def _download_medmnist(info, root, size):
    "Fetch a MedMNIST `.npz` with medmnist's own downloader (needs a network)"
    import medmnist
    root.mkdir(parents=True, exist_ok=True)
    getattr(medmnist, info['python_class'])(split='test', root=str(root), size=size, download=True)

def _npy_header(f) -> tuple:
    "(shape, dtype) of the `.npy` stream `f`, left at its first byte of data"
    version = np.lib.format.read_magic(f)
    shape, fortran, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(f)
    if fortran: raise DataError("A Fortran-ordered array in a MedMNIST file: re-save it with np.savez (C order)")
    return shape, dtype

def _npz_rows(fn, members):
    "The rows of the arrays `members` of the `.npz` file `fn`, in order, read a chunk at a time (never a whole array in memory)"
    with zipfile.ZipFile(fn) as zf:
        for m in members:
            with zf.open(f'{m}.npy') as f:
                shape, dtype = _npy_header(f)
                row = int(np.prod(shape[1:]))*dtype.itemsize
                for i in range(0, shape[0], CHUNK):
                    k = min(CHUNK, shape[0] - i)
                    yield from np.frombuffer(f.read(row*k), dtype).reshape(k, *shape[1:])

@register_dataset('medmnist:<flag>', 'a 2D MedMNIST dataset (e.g. medmnist:pathmnist), official splits')
def medmnist(flag, size, skip_bad=False):
    "A 2D MedMNIST dataset from its `.npz` (official splits); downloaded only when missing and a network exists"
    import medmnist
    if flag not in medmnist.INFO: raise DataError(f"Unknown MedMNIST flag {flag!r}; choose one of {sorted(medmnist.INFO)}")
    info = medmnist.INFO[flag]
    if info['task'] not in ('multi-class', 'binary-class', 'ordinal-regression') or '3d' in flag:
        raise DataError(f"MedMNIST {flag!r} is a {info['task']} task; ftl classifies 2D single-label images")
    npz_size, root = next((s for s in (28, 64, 128, 224) if s >= size), 224), _medmnist_root()
    fn = root/(f'{flag}.npz' if npz_size == 28 else f'{flag}_{npz_size}.npz')
    if not fn.exists():
        try: _download_medmnist(info, root, npz_size)
        except Exception as e:
            raise DatasetMissing(f"MedMNIST file {fn} is missing and could not be downloaded ({type(e).__name__}). "
                                 f"Put {fn.name} (from {info.get('url', 'zenodo.org/records/10519652')}) in {root}, "
                                 f"or set MEDMNIST_ROOT to the folder that holds it.") from None
    parts = ('train', 'val', 'test')
    with np.load(fn) as z: labels = {s: z[f'{s}_labels'].reshape(-1).astype(int) for s in parts}  # only the label arrays are read
    def mode():
        with zipfile.ZipFile(fn) as zf, zf.open('train_images.npy') as f: return 'L' if len(_npy_header(f)[0]) == 3 else 'RGB'
    st = fn.stat()  # an official file: its name, size and modification time identify it
    images, _ = decoded_store(f'medmnist-{fn.stem}-{st.st_size}-{st.st_mtime_ns}-{DECODER}-{size}',
                              _npz_rows(fn, [f'{s}_images' for s in parts]), size, mode, n=sum(len(v) for v in labels.values()))
    split = np.concatenate([np.full(len(labels[s]), {'val': 'valid'}.get(s, s)) for s in parts])
    classes, ids = [info['label'][str(i)] for i in range(len(info['label']))], [f'{s}_{i}' for s in parts for i in range(len(labels[s]))]
    return Source(f'medmnist:{flag}', images, np.concatenate([labels[s] for s in parts]), classes, split,
                  dict(ids=np.array(ids), file=str(fn), native_size=npz_size))

# --- class folders ---------------------------------------------------------------------------------------------------------

SPLIT_NAMES = {'train': 'train', 'valid': 'valid', 'val': 'valid', 'test': 'test'}

def _images_below(d) -> list:
    "Image files below folder `d` as paths relative to it, in path order (fastai's extensions; hidden files and folders skipped)"
    out = []
    for p, dirs, fs in os.walk(d, followlinks=True):
        dirs[:] = [o for o in dirs if not o.startswith('.')]
        pre = '' if (rel := os.path.relpath(p, d)) == '.' else rel + '/'
        out += [pre + f for f in fs if not f.startswith('.') and f'.{f.rsplit(".", 1)[-1].lower()}' in image_extensions]
    return sorted(out, key=(lambda r: r.split('/')) if any('/' in r for r in out) else None)  # the order of paths' parts

def _folder_layout(path: Path) -> tuple:
    "(image paths relative to `path`, class per image, split per image or None) of ImageNet-style class folders, checked"
    if not path.is_dir(): raise DatasetMissing(f"Image folder {path} does not exist; pass folder:<path to class folders>")
    tops = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith('.'))
    has_splits = bool(tops) and {d.name for d in tops} <= set(SPLIT_NAMES)
    if has_splits and (missing := {'train', 'valid', 'test'} - {SPLIT_NAMES[d.name] for d in tops}):
        raise DataError(f"{path} has split folders {[d.name for d in tops]} but no {sorted(missing)}: give all three "
                        f"(train/, valid/ or val/, test/), or put the class folders at the top for a stratified 80/10/10 split")
    rel, cls, split = [], [], []
    for root in (tops if has_splits else [path]):
        for c in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith('.')):
            if not (found := _images_below(c)):
                raise DataError(f"Class folder {c} holds no images: add images of class {c.name!r} or remove the folder")
            pre = f'{c.relative_to(path)}/'
            rel += [pre + f for f in found]; cls += [c.name]*len(found)
            split += [SPLIT_NAMES[root.name] if has_splits else None]*len(found)
    if not rel: raise DatasetMissing(f"No images under {path}; expected <path>/<class>/<image> or <path>/train/<class>/<image>")
    return rel, cls, (split if has_splits else None)

def _digest(file) -> bytes:
    "sha1 of all the bytes of `file` (raw reads: no buffered file object per file)"
    fd, parts = os.open(file, os.O_RDONLY), []
    try:
        while (b := os.read(fd, 1 << 20)): parts.append(b)
    finally: os.close(fd)
    return hashlib.sha1(b''.join(parts)).digest()

def _fingerprint(path: Path, rel) -> str:
    "sha1 of every file's path below `path` (its split and class folders) and of all its bytes, read afresh: no cache to go stale"
    n = -(-len(rel)//16)  # 4 threads over 16 runs of files: reads and hashing release the GIL
    with ThreadPoolExecutor(4) as ex:
        runs = ex.map(lambda rs: [_digest(f'{path}/{r}') for r in rs], [rel[i:i + n] for i in range(0, len(rel), n)])
        digests = [d for run in runs for d in run]
    h = hashlib.sha1()
    for r, d in zip(rel, digests): h.update(r.encode()); h.update(b'\0'); h.update(d)
    return h.hexdigest()[:12]

def folder_fingerprint(path) -> str:
    "A folder dataset's identity: a changed byte, class or split changes it (every file hashed in full: bench/data_store.py times it)"
    path = Path(path).expanduser().resolve()
    return _fingerprint(path, _folder_layout(path)[0])

def _folder_arg(arg) -> tuple:
    "(resolved path, task name or None) of a 'folder:<path>[#<task>]' argument"
    if '?' in arg: raise DataError(f"folder:{arg}: options after '?' are gone; pass --skip-bad-images (load_source(..., skip_bad=True))")
    path, _, task = arg.partition('#')
    return Path(path).expanduser().resolve(), task or None

def card_in(folder: Path) -> Path | None:
    "`folder`'s README.md when it is a card (YAML front matter first), else None: a README of prose alone is no card"
    p = Path(folder)/'README.md'
    if not p.is_file(): return None
    with open(p, 'rb') as f: return p if f.read(3) == b'---' else None

def _folder_card(arg) -> Path: return card_in(_folder_arg(arg)[0])

def _folder_check(arg):
    "A task named after '#' must be defined by the folder's card, when the folder is there to look"
    path, task = _folder_arg(arg)
    if task is None or not path.is_dir(): return
    if (p := _folder_card(arg)) is None: raise DataError(f"folder:{arg} names task {task!r}, but {path} has no README.md card")
    parse_card(p).task(task)

def _folder_ident(arg) -> str:
    path, task = _folder_arg(arg)
    rule = '' if task is None else '#' + hashlib.sha1(json.dumps(parse_card(_folder_card(arg)).task(task).rule).encode()).hexdigest()[:8]
    return folder_fingerprint(path) + rule

def _mode_of(files) -> str:
    "'L' when every readable file is gray, else 'RGB' (read from the headers only)"
    for f in files:
        try:
            with Image.open(f) as im:
                if im.mode not in GRAY_MODES: return 'RGB'
        except Exception: pass  # unreadable: reported when decoded
    return 'L'

@register_dataset('folder:<path>', 'class folders at <path>; folder:<path>#<task> for a task of its README.md card',
                  ident=_folder_ident, card=_folder_card, check=_folder_check)
def folder(arg, size, skip_bad=False):
    "ImageNet-style class folders: `train/valid|val/test` subfolders when present, else a stratified 80/10/10 split"
    path, task = _folder_arg(arg)
    return images_source(f'folder:{path}', path, *_folder_layout(path), size, skip_bad, task)

def images_source(name, path: Path, rel, cls, split, size, skip_bad=False, task=None, kind='folders') -> Source:
    """The images `rel` (relative to `path`) of classes `cls`, decoded once into the store, in splits `split` (each class in
    each; `kind` says where it came from), or a stratified 80/10/10 split where `split` is None; task `task` of the card when given"""
    files = [f'{path}/{r}' for r in rel]
    images, keep = decoded_store(f'folder-{DECODER}-{_fingerprint(path, rel)}-{size}', files, size, partial(_mode_of, files),
                                 skip_bad=skip_bad)  # the store holds the images kept, in order
    rel, cls, files = ([x[i] for i in keep] for x in (rel, cls, files))
    classes = sorted(set(cls))
    labels, info = np.searchsorted(classes, cls), dict(split_kind=kind)
    if split is None:
        info = dict(split_fracs=(0.8, 0.1, 0.1), split_seed=SPLIT_SEED)
        split = stratified_split(labels, info['split_fracs'], info['split_seed'], classes)
    else:
        split = np.array(split)[keep]
        for s in ('train', 'valid', 'test'):
            if (absent := sorted(set(classes) - {classes[l] for l in labels[split == s]})):
                raise DataError(f"Split {s} of {name} has no images of classes {absent}: every class needs images in every split")
    src = Source(name, images, labels, classes, split, dict(ids=np.array(rel), files=np.array(files), **info))
    return src if task is None else derive_task(src, card_of(src).task(task), f'{name}#{task}')

# --- synthetic -------------------------------------------------------------------------------------------------------------

@register_dataset('synthetic', 'a tiny learnable dataset for tests')
def synthetic(size, skip_bad=False, n_per_class=40, n_classes=3, seed=0):
    "A tiny learnable dataset for tests: each class is a bright bar at its own orientation on noise"
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    imgs = rng.integers(0, 60, (len(labels), size, size), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for i, c in enumerate(labels):
        mask = [np.abs(yy - size//2) < size//8, np.abs(xx - size//2) < size//8, np.abs(yy - xx) < size//8][c % 3]
        imgs[i][mask] = rng.integers(180, 255)
    images, _ = decoded_store(f'synthetic-s1-{size}-{n_per_class}-{n_classes}-{seed}', imgs, size, 'L')  # memory-mapped like the rest
    return Source('synthetic', images, labels, [f'class{c}' for c in range(n_classes)], stratified_split(labels, (0.6, 0.2, 0.2), seed),
                  dict(ids=np.array([f'syn{i:04d}' for i in range(len(labels))])))
