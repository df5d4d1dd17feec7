"Files: ftl's cache folder, and writes that readers never see half done"
from __future__ import annotations
import os, tempfile
from pathlib import Path

__all__ = ['cache_dir', 'write_atomic']

def cache_dir(*sub) -> Path:
    "ftl's cache folder (`$FTL_CACHE`, default `~/.cache/ftl`), created on demand"
    p = Path(os.environ.get('FTL_CACHE', Path.home()/'.cache'/'ftl')).expanduser().joinpath(*sub)
    p.mkdir(parents=True, exist_ok=True)
    return p

def write_atomic(path, write) -> Path:
    "Call `write(tmp_path)`, then rename the temporary file (same folder, same suffix) to `path`: readers never see half a file"
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix='.tmp-', suffix=path.suffix); os.close(fd)
    try: write(Path(tmp)); os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True); raise
    return path
