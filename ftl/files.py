"Files: ftl's cache folder, and writes that readers never see half done, with the modes the process umask gives"
from __future__ import annotations
import os, shutil, tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ['cache_dir', 'write_atomic', 'write_unless_same', 'atomic_dir', 'umask']

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
