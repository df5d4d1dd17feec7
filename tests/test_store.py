import os, warnings, numpy as np, pytest
from PIL import Image
from ftl.data import load_source, dataset_id, decode_image, decoded_store, make_dls
from ftl.files import write_atomic, cache_dir
from ftl.store import open_store, write_store, store_dir
from ftl.errors import DataError

def make_folder(root, n=6, seed=0):
    "Two class folders of random gray PNGs stored uncompressed (so any two have the same file size)"
    rng = np.random.default_rng(seed)
    for c in ('a', 'b'):
        (root/c).mkdir(parents=True, exist_ok=True)
        for i in range(n): Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(root/c/f'{i}.png', compress_level=0)
    return root

def test_bytes_changed_in_place_with_name_size_and_mtime_kept_are_seen_in_the_same_process(tmp_path):
    root = make_folder(tmp_path/'d')
    f = root/'a'/'0.png'
    before, ident = load_source(f'folder:{root}', 16), dataset_id(f'folder:{root}')
    st = f.stat()
    Image.fromarray(np.full((20, 20), 7, np.uint8)).save(f, compress_level=0)  # new pixels, same file size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (f.stat().st_size, f.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    after = load_source(f'folder:{root}', 16)
    i = list(after.info['ids']).index('a/0.png')
    assert (after.images[i] == 7).all() and not (before.images[i] == 7).all()
    assert dataset_id(f'folder:{root}') != ident

def test_images_are_a_read_only_memmap_equal_to_the_decoded_files(tmp_path):
    root = make_folder(tmp_path/'d')
    src = load_source(f'folder:{root}', 16)
    assert isinstance(src.images, np.memmap) and not src.images.flags.writeable
    assert np.array_equal(src.images, np.stack([decode_image(f, 16, 'L') for f in src.info['files']]))
    again = load_source(f'folder:{root}', 16)  # reopened from the store, the same pixels
    assert again.images.filename == src.images.filename and np.array_equal(again.images, src.images)

def test_training_batches_from_the_memmap_raise_no_warnings(synthetic):
    assert isinstance(synthetic.images, np.memmap)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # torch warns when handed a read-only array
        x, y = make_dls(synthetic, bs=8).one_batch()
    assert x.shape == (8, 3, 32, 32)

def test_an_interrupted_store_write_leaves_nothing_taken_for_finished():
    def chunks():
        yield np.zeros((2, 4, 4), np.uint8)
        raise KeyboardInterrupt  # a user stopping the first decode halfway
    with pytest.raises(KeyboardInterrupt): write_store('half', 4, (4, 4), chunks())
    assert open_store('half') is None and not store_dir('half').exists()
    assert not [p for p in cache_dir('data').iterdir() if 'half' in p.name]  # no temporary folder left either
    images, kept = decoded_store('half', [np.full((4, 4), i, np.uint8) for i in range(4)], 4, 'L')
    assert images.shape == (4, 4, 4) and (images[3] == 3).all() and list(kept) == [0, 1, 2, 3]

def test_a_store_of_fewer_items_than_announced_is_a_valid_npy():
    images, meta = write_store('short', 10, (3, 3), [np.ones((4, 3, 3), np.uint8)], dict(n=4))
    assert images.shape == (4, 3, 3) and (images == 1).all() and meta == {'n': 4}
    assert np.load(store_dir('short')/'images.npy').shape == (4, 3, 3)

def test_skipped_images_are_listed_again_and_not_served_without_the_option(tmp_path, capsys):
    root = make_folder(tmp_path/'d')
    (root/'b'/'broken.png').write_bytes(b'not a png')
    assert len(load_source(f'folder:{root}', 16, skip_bad=True).labels) == 12
    assert f"skipped unreadable image {root/'b'/'broken.png'}" in capsys.readouterr().out
    with pytest.raises(DataError, match=r'1 unreadable image.*broken\.png.*--skip-bad-images'): load_source(f'folder:{root}', 16)
    with pytest.raises(DataError, match=r"options after '\?' are gone.*--skip-bad-images"): load_source(f'folder:{root}?skip-bad', 16)

def test_files_are_created_with_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        assert write_atomic(tmp_path/'r.json', lambda p: p.write_text('{}')).stat().st_mode & 0o777 == 0o644
        write_store('umask', 1, (2, 2), [np.zeros((1, 2, 2), np.uint8)])
        assert {p.name: p.stat().st_mode & 0o777 for p in store_dir('umask').iterdir()} == {'images.npy': 0o644, 'meta.json': 0o644}
        assert store_dir('umask').stat().st_mode & 0o777 == 0o755
        os.umask(0o077)
        assert write_atomic(tmp_path/'s.json', lambda p: p.write_text('{}')).stat().st_mode & 0o777 == 0o600
    finally: os.umask(old)

def test_a_sixteen_bit_image_decodes_the_same_as_a_file_and_as_an_array(tmp_path):
    a16 = (np.arange(40*40).reshape(40, 40)*40).astype(np.uint16)  # 0 .. 63960
    Image.fromarray(a16).save(tmp_path/'deep.png')
    from_file, from_array = decode_image(tmp_path/'deep.png', 32), decode_image(a16, 32)
    assert np.array_equal(from_file, from_array) and from_array.max() > 200 and (from_array == 255).mean() < 0.01
    assert np.array_equal(decode_image(a16.astype(np.int32), 32), from_array)  # any integer type holding 16-bit values
    assert np.array_equal(decode_image(np.stack([a16]*3, -1), 32, 'RGB')[..., 0], from_array)  # colour arrays too
