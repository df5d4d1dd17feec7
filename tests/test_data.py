import numpy as np, pytest, torch
from PIL import Image
from ftl.data import load_source, subset_indices, make_dls, labelled_test_dl, StratifiedSubsetSplitter, stratified_split, decode_image
from ftl.errors import DataError, DatasetMissing
from fastai.vision.all import Normalize

def class_share(labels, idx, n): return np.bincount(labels[idx], minlength=n)/len(idx)

def test_elpv_real_data_and_fixed_split():
    src = load_source('elpv', 32)
    assert src.images.shape == (2624, 32, 32) and src.images.dtype == np.uint8
    assert src.counts() == {'functional': 1508, 'possibly-defective': 295, 'likely-defective': 106, 'defective': 715}
    n = {s: len(src.idx(s)) for s in ('train', 'valid', 'test')}
    assert sum(n.values()) == 2624 and abs(n['train']/2624 - 0.7) < 0.01 and abs(n['test']/2624 - 0.15) < 0.01
    for s in ('valid', 'test'):  # every split has the class mix of the whole
        assert np.abs(class_share(src.labels, src.idx(s), 4) - np.bincount(src.labels)/2624).max() < 0.01
    assert (load_source('elpv', 32).split == src.split).all()  # fixed by the documented seed
    binary = load_source('elpv-binary', 32)
    assert binary.classes == ['functional', 'defective'] and binary.counts()['defective'] == 295 + 106 + 715

def test_subsets_stratified_nested_and_every_class_kept():
    src = load_source('elpv', 32)
    tr = src.idx('train')
    prev = None
    for f in (1.0, 0.5, 0.25, 0.1, 0.05):
        idx = subset_indices(src.labels, tr, f, seed=1)
        assert set(idx) <= set(tr) and abs(len(idx) - f*len(tr)) <= 4
        assert np.abs(class_share(src.labels, idx, 4) - class_share(src.labels, tr, 4)).max() < 0.01
        assert np.bincount(src.labels[idx], minlength=4).min() >= 1
        if prev is not None: assert set(idx) <= set(prev)  # nested: the 5 % subset sits inside the 10 % one
        prev = idx
    assert not np.array_equal(subset_indices(src.labels, tr, 0.1, 1), subset_indices(src.labels, tr, 0.1, 2))

def test_fraction_that_empties_a_class_names_it():
    labels = np.array([0]*100 + [1]*3)
    with pytest.raises(ValueError, match=r"leaves class 'rare' empty"):
        subset_indices(labels, np.arange(103), 0.1, 0, classes=['common', 'rare'])
    with pytest.raises(ValueError, match='fraction'): subset_indices(labels, np.arange(103), 1.5, 0)

def test_dataloaders_shrink_train_only_and_normalise(synthetic):
    full, small = make_dls(synthetic, 1.0, 0, bs=8), make_dls(synthetic, 0.5, 0, bs=8)
    assert len(full.train_ds) == len(synthetic.idx('train')) and len(small.train_ds) == len(synthetic.idx('train'))//2
    assert len(small.valid_ds) == len(full.valid_ds) == len(synthetic.idx('valid'))
    assert len(labelled_test_dl(small, synthetic).dataset) == len(synthetic.idx('test'))
    norms = [t for t in small.after_batch.fs if isinstance(t, Normalize)]
    assert len(norms) == 1
    x, y = small.one_batch()
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and abs(float(x.mean())) < 3

def test_splitter_is_the_subset_and_full_validation(synthetic):
    tr, va = StratifiedSubsetSplitter(synthetic, 0.5, 3)(None)
    assert set(tr) <= set(synthetic.idx('train')) and list(va) == list(synthetic.idx('valid'))

def test_folder_source_with_and_without_split_folders(tmp_path):
    rng = np.random.default_rng(0)
    for root, parts in [(tmp_path/'flat', ['']), (tmp_path/'split', ['train', 'valid', 'test'])]:
        for part in parts:
            for c in ('cats', 'dogs'):
                d = root/part/c; d.mkdir(parents=True)
                for i in range(10): Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(d/f'{i}.png')
        src = load_source(f'folder:{root}', 16)
        assert src.classes == ['cats', 'dogs'] and src.images.shape[1:] == (16, 16, 3)
        assert set(src.split) == {'train', 'valid', 'test'}
    assert (load_source(f'folder:{tmp_path/"split"}', 16).split == 'test').sum() == 20

def test_medmnist_reads_local_npz_and_explains_a_missing_one(tmp_path, monkeypatch):
    monkeypatch.setenv('MEDMNIST_ROOT', str(tmp_path))
    rng = np.random.default_rng(0)
    arrays = {f'{s}_{k}': v for s, n in [('train', 30), ('val', 10), ('test', 12)]
              for k, v in [('images', rng.integers(0, 255, (n, 28, 28, 3), dtype=np.uint8)), ('labels', rng.integers(0, 9, (n, 1)))]}
    np.savez(tmp_path/'pathmnist.npz', **arrays)
    src = load_source('medmnist:pathmnist', 28)
    assert len(src.classes) == 9 and (src.split == 'valid').sum() == 10 and (src.split == 'test').sum() == 12
    small = load_source('medmnist:pathmnist', 16)  # another size: streamed from the .npz into a store, resized
    whole = np.concatenate([arrays[f'{s}_images'] for s in ('train', 'val', 'test')])
    assert small.images.shape == (52, 16, 16, 3) and np.array_equal(small.images, np.stack([decode_image(a, 16, 'RGB') for a in whole]))
    assert np.array_equal(src.images, whole) and isinstance(src.images, np.memmap)
    def offline(*a): raise OSError('no network')
    monkeypatch.setattr('ftl.datasets._download_medmnist', offline)
    with pytest.raises(FileNotFoundError, match=r'dermamnist\.npz.*MEDMNIST_ROOT'): load_source('medmnist:dermamnist', 28)

def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Unknown dataset 'imagenette'.*elpv"): load_source('imagenette', 32)
    with pytest.raises(ValueError, match='Unknown MedMNIST flag'): load_source('medmnist:nosuchmnist', 28)

def test_model_outputs_keep_the_source_class_order():
    src = load_source('elpv', 32)  # classes in severity order, not alphabetical: fastai would sort a given vocab
    dls = make_dls(src, 0.05, 0, bs=16)
    assert list(dls.vocab) == src.classes != sorted(src.classes)
    tdl = labelled_test_dl(dls, src)
    targs = torch.cat([y for _, y in tdl]).numpy()
    assert (targs == src.labels[src.idx('test')]).all()  # target index i means src.classes[i]


# --- class folders as a new user hands them over (issue 11) ----------------------------------------------------------

def make_folder(root, classes=('cats', 'dogs'), n=10, shape=(20, 30), seed=0, mode='L'):
    "Class folders of random PNGs; returns the root"
    rng = np.random.default_rng(seed)
    for c in classes:
        (root/c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = rng.integers(0, 255, shape + ((3,) if mode == 'RGB' else ()), dtype=np.uint8)
            Image.fromarray(a).save(root/c/f'{c}{i}.png')
    return root

def test_moved_files_and_a_new_class_are_a_new_dataset(tmp_path):
    from ftl.train import Config
    root = make_folder(tmp_path/'d')
    key = Config(dataset=f'folder:{root}', size=16).key()
    before = load_source(f'folder:{root}', 16)
    for i in range(3): (root/'cats'/f'cats{i}.png').rename(root/'dogs'/f'moved{i}.png')  # relabel three images
    after = load_source(f'folder:{root}', 16)
    assert after.counts() == {'cats': 7, 'dogs': 13} and before.counts() == {'cats': 10, 'dogs': 10}
    for f, lbl in zip(after.info['ids'], after.labels):  # every cached image carries the label of its folder now
        assert after.classes[lbl] == f.split('/')[0]
    key2 = Config(dataset=f'folder:{root}', size=16).key()
    make_folder(root, classes=('birds',), seed=1)
    grown = load_source(f'folder:{root}', 16)
    assert grown.classes == ['birds', 'cats', 'dogs'] and len(grown.labels) == 30
    assert len({key, key2, Config(dataset=f'folder:{root}', size=16).key()}) == 3  # a changed dataset: a new record

def test_sixteen_bit_pngs_are_scaled_not_clipped(tmp_path):
    a16 = (np.arange(64*64).reshape(64, 64)*16).astype(np.uint16)  # 0 .. 65520
    Image.fromarray(a16).save(tmp_path/'deep.png')
    out = decode_image(tmp_path/'deep.png', 64)
    assert out.dtype == np.uint8 and (out == 255).mean() < 0.01
    assert np.abs(out.astype(int) - np.rint(a16/257).astype(int)).max() <= 1

def test_rgba_and_palette_images_join_a_grayscale_dataset(tmp_path):
    root = make_folder(tmp_path/'d')
    Image.fromarray(np.full((20, 30, 4), 200, np.uint8), 'RGBA').save(root/'cats'/'alpha.png')
    Image.fromarray(np.full((20, 30), 3, np.uint8)).convert('P').save(root/'dogs'/'palette.png')
    src = load_source(f'folder:{root}', 16)
    assert src.images.shape == (22, 16, 16, 3) and len(src.labels) == 22  # one colour image: the dataset is RGB

def test_damaged_images_are_named_before_training_and_skipped_only_on_request(tmp_path):
    root = make_folder(tmp_path/'d')
    data = (root/'cats'/'cats0.png').read_bytes()
    (root/'cats'/'truncated.png').write_bytes(data[:len(data)//2])
    (root/'dogs'/'empty.png').write_bytes(b'')
    with pytest.raises(DataError, match=r"2 unreadable image.*(truncated|empty)\.png.*--skip-bad-images"): load_source(f'folder:{root}', 16)
    src = load_source(f'folder:{root}', 16, skip_bad=True)
    assert len(src.labels) == 20 and not any('truncated' in i or 'empty' in i for i in src.info['ids'])

def test_tiny_and_empty_classes_and_missing_splits_are_clear_errors(tmp_path):
    root = make_folder(tmp_path/'one')
    make_folder(root, classes=('rare',), n=1)
    with pytest.raises(DataError, match=r"\['rare'\] have fewer than 3 images"): load_source(f'folder:{root}', 16)
    root = make_folder(tmp_path/'empty'); (root/'ghosts').mkdir()
    with pytest.raises(DataError, match=r"ghosts holds no images"): load_source(f'folder:{root}', 16)
    root = tmp_path/'split'
    for part in ('train', 'valid'): make_folder(root/part)
    with pytest.raises(DataError, match=r"no \['test'\]"): load_source(f'folder:{root}', 16)
    with pytest.raises(DatasetMissing, match='does not exist'): load_source(f'folder:{tmp_path/"nowhere"}', 16)

def test_a_training_subset_smaller_than_the_batch_still_trains_on_every_image(synthetic):
    "fastai drops the last incomplete training batch: a 5 % subset of 72 images with bs 64 would be no batch at all"
    dls = make_dls(synthetic, 0.1, 0, bs=64)
    n = len(dls.train.dataset)
    assert dls.train.bs == n < 64 and len(dls.train) == 1 and sum(len(y) for _, y in dls.train) == n
