"Datasets in the shape a notebook holds them: arrays handed to `ftl.from_arrays`, MedMNIST's .npz layout among them"
import numpy as np, pytest
import ftl
from ftl.data import load_source, dataset_id
from ftl.errors import DataError, DatasetMissing

def medmnist_npz(path, n=(30, 9, 9), size=28, rgb=False, seed=0):
    "An .npz in MedMNIST's layout (train/val/test images and N x 1 labels), 3 learnable classes"
    rng, arrays = np.random.default_rng(seed), {}
    for part, k in zip(('train', 'val', 'test'), n):
        y = np.arange(k) % 3
        x = rng.integers(0, 50, (k, size, size) + ((3,) if rgb else ()), dtype=np.uint8)
        for i, c in enumerate(y): x[i, [4, 12, 20][c]:[4, 12, 20][c] + 5] = 220
        arrays[f'{part}_images'], arrays[f'{part}_labels'] = x, y[:, None]
    np.savez(path, **arrays)
    return path

def test_arrays_from_an_npz_train_in_a_notebook_with_their_own_split(tmp_path):
    z = np.load(medmnist_npz(tmp_path/'pathmnist.npz'))
    parts = ('train', 'val', 'test')
    x = np.concatenate([z[f'{p}_images'] for p in parts]); y = np.concatenate([z[f'{p}_labels'][:, 0] for p in parts])
    ends = np.cumsum([len(z[f'{p}_labels']) for p in parts])
    split = dict(train=np.arange(ends[0]), val=np.arange(ends[0], ends[1]), test=np.arange(ends[1], ends[2]))
    name = ftl.from_arrays(x, y, classes=['low', 'mid', 'high'], name='toy-path', split=split)
    assert name == 'arrays:toy-path'
    src = load_source(name, 28)
    assert list(src.classes) == ['low', 'mid', 'high'] and (src.split == np.repeat(['train', 'valid', 'test'], [30, 9, 9])).all()
    assert (src.images[:] == x).all()  # the store holds the arrays as given at their own size
    learn, rec = ftl.train(ftl.Config(dataset=name, size=28, arch='mobilenetv2', strategy='full-finetune', epochs=2, bs=8))
    assert rec.n_train == 30 and rec.n_test == 9 and rec.data_id == dataset_id(name) and rec.vocab == ['low', 'mid', 'high']
    assert learn.predict(x[0])[0] in ('low', 'mid', 'high')  # a notebook predicts on an array

def test_the_same_arrays_are_the_same_dataset_and_changed_ones_a_new_one(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 65535, (40, 20, 20), dtype=np.uint16), np.repeat(['a', 'b'], 20)  # 16-bit gray, named labels
    name = ftl.from_arrays(x, y, name='sixteen')
    first, key = dataset_id(name), ftl.Config(dataset=name, size=16).key()
    assert ftl.from_arrays(x, y, name='sixteen') == name and dataset_id(name) == first
    src = load_source(name, 16)
    assert src.images.dtype == np.uint8 and src.images.shape == (40, 16, 16) and list(src.classes) == ['a', 'b']
    assert all(set(src.labels[src.split == s]) == {0, 1} for s in ('train', 'valid', 'test'))  # stratified 80/10/10
    x2 = x.copy(); x2[0, 0, 0] ^= 1
    ftl.from_arrays(x2, y, name='sixteen')
    assert dataset_id(name) != first and ftl.Config(dataset=name, size=16).key() != key  # a new record, never a stale one

@pytest.mark.parametrize('call, msg', [
    (lambda x, y: ftl.from_arrays(x.astype(np.float32), y), r"images are float32; give uint8 or uint16"),
    (lambda x, y: ftl.from_arrays(x[:, 0], y), r"images of shape \(12, 8\); give N x H x W"),
    (lambda x, y: ftl.from_arrays(x, y[:-1]), r"12 images but labels of shape \(11,\)"),
    (lambda x, y: ftl.from_arrays(x, y, classes=['a']), r"labels run 0..1, but there are 1 classes"),
    (lambda x, y: ftl.from_arrays(x, y*0), r"the labels hold one class"),
    (lambda x, y: ftl.from_arrays(x, y, split=['train']*11 + ['holdout']), r"split holds \['holdout'\]"),
    (lambda x, y: ftl.from_arrays(x, y, split=dict(train=range(10), test=range(9, 12))), r"split 'test' repeats images"),
    (lambda x, y: ftl.from_arrays(x, y, name='my data'), r"name 'my data' must be letters"),
    (lambda x, y: load_source('arrays:never-made', 16), r"No arrays named 'never-made'.*call ftl.from_arrays"),
])
def test_bad_arrays_are_refused_with_a_message_naming_the_problem(call, msg):
    x, y = np.zeros((12, 8, 8), np.uint8), np.arange(12) % 2
    with pytest.raises((DataError, DatasetMissing), match=msg): call(x, y)
