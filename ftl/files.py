"Files: ftl's cache folder, and writes that readers never see half done, with the modes the process umask gives"
from __future__ import annotations
import os, shutil, tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ['cache_dir', 'write_atomic', 'write_unless_same', 'atomic_dir', 'umask', 'same_table', 'same_picture', 'keep_table']

def cache_dir(*sub) -> Path:
    "ftl's cache folder (`$FTL_CACHE`, default `~/.cache/ftl`), created on demand"
    p = Path(os.environ.get('FTL_CACHE', Path.home()/'.cache'/'ftl')).expanduser().joinpath(*sub)
    p.mkdir(parents=True, exist_ok=True)
    return p

def umask() -> int:
    "The process umask, read without changing it where Linux tells it (`/proc/self/status`), else set and restored"
    try: return int(next(l for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('Umask:')).split()[1], 8)
    except (OSError, StopIteration, ValueError, IndexError):
        old = os.umask(0o022); os.umask(old); return old

def write_atomic(path, write) -> Path:
    "Call `write(tmp_path)`, then rename the temporary file (same folder, same suffix) to `path`: readers never see half a file"
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix='.tmp-', suffix=path.suffix); os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600: a results folder shared by a cluster must stay readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True); raise
    return path

def write_unless_same(path, write, same, also=()) -> bool:
    """Write `path` with `write(tmp_path)` unless it exists and `same(path, tmp_path)` calls the new file a repeat of it;
    `also`: suffixes of files `write` makes beside it, kept or replaced with it (kept only where all exist). True if written"""
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix='.tmp-') as d:
        new = Path(d)/path.name; write(new)
        if all(path.with_suffix(s).exists() for s in also) and path.exists() and same(path, new): return False
        for s in (*also, path.suffix):  # the main file last: present means its companions are written
            os.chmod(new.with_suffix(s), 0o666 & ~umask()); os.replace(new.with_suffix(s), path.with_suffix(s))
    return True

@contextmanager
def atomic_dir(path):
    "Yield a temporary folder beside `path`, renamed to `path` when the block ends cleanly, removed when it raises"
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f'.tmp-{path.name}-'))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~umask())
        try: os.rename(tmp, path)
        except OSError:  # another process finished the same folder first: theirs is as good
            if not path.is_dir(): raise
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True); raise

def same_table(a, b, rtol, atol) -> bool:
    "Whether CSVs `a` and `b` hold the same rows, columns, words and flags, their numbers equal within `rtol` and `atol`"
    import numpy as np, pandas as pd
    x, y = (pd.read_csv(p, keep_default_na=False) for p in (a, b))
    if x.shape != y.shape or list(x.columns) != list(y.columns) or list(x.dtypes) != list(y.dtypes): return False
    nums = x.select_dtypes('number').columns
    words = x.columns.difference(nums)
    return x[words].equals(y[words]) and np.allclose(x[nums].to_numpy(float), y[nums].to_numpy(float), rtol=rtol, atol=atol, equal_nan=True)

def same_picture(a, b, share) -> bool:
    "Whether PNGs `a` and `b` have one size and at most `share` of their pixels differ"
    import numpy as np
    from PIL import Image
    x, y = (np.asarray(Image.open(p).convert('RGB')) for p in (a, b))
    return x.shape == y.shape and (x != y).any(2).mean() <= share

def keep_table(df, path, same):
    """Write `df` to CSV `path` unless the saved one is `same`; return what the file holds (the saved values where kept), its
    `attrs['rewritten']` saying which"""
    import pandas as pd
    if write_unless_same(path, lambda p: df.to_csv(p, index=False), same): out, new = df.copy(), True
    else: out, new = pd.read_csv(path, keep_default_na=False).set_axis(df.index), False
    out.attrs['rewritten'] = new
    return out
