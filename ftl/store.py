"Decoded-image stores: a uint8 `.npy` written to disk chunk by chunk, renamed into place whole, read back memory-mapped read-only"
from __future__ import annotations
import io, json, os
from pathlib import Path
import numpy as np
from .files import cache_dir, atomic_dir

__all__ = ['store_dir', 'open_store', 'write_store']

def store_dir(key) -> Path: return cache_dir('data')/key

def open_store(key):
    "(images as a read-only `np.memmap`, metadata dict) of the finished store `key`, or None where there is none"
    d = store_dir(key)
    if not (d/'meta.json').is_file(): return None  # the folder appears by one rename once complete: no half store is ever seen
    return np.load(d/'images.npy', mmap_mode='r'), json.loads((d/'meta.json').read_text())

def _header(shape) -> bytes:
    "The `.npy` header of a C-order uint8 array of `shape` (numpy pads it so the first axis may grow in place)"
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, dict(descr='|u1', fortran_order=False, shape=tuple(int(s) for s in shape)))
    return buf.getvalue()

def write_store(key, n: int, item_shape: tuple, chunks, meta=dict):
    "Write at most `n` items of `item_shape` from `chunks` (uint8 arrays) to store `key`, then `meta()` beside them; return it opened"
    item_shape = tuple(item_shape)
    with atomic_dir(store_dir(key)) as tmp:
        with open(tmp/'images.npy', 'wb') as f:  # plain writes, not a writable memmap: no written page counts in RSS
            f.write(head := _header((n, *item_shape)))
            count = 0
            for c in chunks:
                c = np.ascontiguousarray(c, dtype=np.uint8)
                if c.shape[1:] != item_shape or count + len(c) > n:
                    raise ValueError(f"store {key}: chunk of shape {c.shape} after {count} items does not fit {n} x {item_shape}")
                f.write(c.data); count += len(c)
            if count < n:  # fewer items than announced (skipped images): rewrite the first axis, same header length
                f.seek(0); f.write(short := _header((count, *item_shape))); f.truncate(len(head) + count*int(np.prod(item_shape)))
                assert len(short) == len(head), 'numpy reserves room in the header for the first axis to change'
            f.flush(); os.fsync(f.fileno())
        (tmp/'meta.json').write_text(json.dumps(meta() if callable(meta) else meta))
    return open_store(key)
