import numpy as np, pytest, torch
from PIL import Image
from ftl.data import load_source, subset_indices, make_dls, labelled_test_dl, StratifiedSubsetSplitter, stratified_split
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
    assert load_source('medmnist:pathmnist', 16).images.shape == (52, 16, 16, 3)
    def offline(*a): raise OSError('no network')
    monkeypatch.setattr('ftl.data._download_medmnist', offline)
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
