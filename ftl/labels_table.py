"""A dataset from a labels table: a CSV or Parquet file with a file column (paths relative to the table's folder), a label
column and optionally a split column, as fastai's `ImageDataLoaders.from_df` and Hugging Face's imagefolder `metadata.csv` have"""
from __future__ import annotations
import hashlib, json
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qsl
import pandas as pd
from .errors import DataError, DatasetMissing
from .data import register_dataset
from .cards import parse_card
from .datasets import images_source, card_in, _fingerprint, SPLIT_NAMES

__all__ = ['read_table', 'table_layout', 'FN_COLS', 'LABEL_COLS', 'SPLIT_COLS']

FN_COLS = ('file_name', 'fname', 'filename', 'file', 'path', 'image')  # the file column when fn_col is not given (file_name: Hugging Face)
LABEL_COLS = ('label', 'labels', 'class', 'target', 'y')
SPLIT_COLS = ('split',)
OPTIONS = ('fn_col', 'label_col', 'valid_col')  # fastai's from_df names; valid_col holds train / valid (or val) / test

def _arg(arg) -> tuple:
    "(table path, options, task or None) of a 'csv:<table>[?fn_col=..&label_col=..&valid_col=..][#<task>]' argument"
    rest, _, task = arg.partition('#')
    path, _, query = rest.partition('?')
    opts = dict(parse_qsl(query, keep_blank_values=True))
    if (bad := sorted(set(opts) - set(OPTIONS))):
        raise DataError(f"csv:{arg}: unknown option {bad[0]!r}; the options are {list(OPTIONS)} (e.g. csv:labels.csv?fn_col=image&label_col=y)")
    return Path(path).expanduser().resolve(), opts, task or None

def read_table(path: Path) -> pd.DataFrame:
    "The labels table at `path` (.csv, .tsv or .parquet), every column read as text"
    if not path.is_file(): raise DatasetMissing(f"Labels table {path} does not exist; pass csv:<path to a .csv or .parquet file>")
    if path.suffix == '.parquet':
        try: return pd.read_parquet(path).astype(str)
        except ImportError: raise DataError(f"Reading {path} needs pyarrow: pip install pyarrow (requirements.txt has it)") from None
    return pd.read_csv(path, sep='\t' if path.suffix == '.tsv' else ',', dtype=str, keep_default_na=False)

def _column(df, path, given, names, what, option) -> str | None:
    "The column named `given`, else the first of `names` present (None where `what` is optional and absent)"
    if given is not None:
        if given not in df.columns: raise DataError(f"{path} has no column {given!r} ({option}); its columns are {list(df.columns)}")
        return given
    found = next((c for c in names if c in df.columns), None)
    if found is None and what != 'split':
        raise DataError(f"{path} has no {what} column among {list(names)}; its columns are {list(df.columns)}: name it with "
                        f"csv:{path}?{option}=<column>")
    return found

def table_layout(path: Path, opts: dict) -> tuple:
    "(image paths relative to the table's folder, class per image, split per image or None) of a labels table, checked"
    df, base = read_table(path), path.parent
    fn = _column(df, path, opts.get('fn_col'), FN_COLS, 'file', 'fn_col')
    label = _column(df, path, opts.get('label_col'), LABEL_COLS, 'label', 'label_col')
    split = _column(df, path, opts.get('valid_col'), SPLIT_COLS, 'split', 'valid_col')
    if not len(df): raise DataError(f"{path} has no rows: one row per image (file, label)")
    rel = [PurePosixPath(p.replace('\\', '/')).as_posix() for p in df[fn]]
    if (out := [p for p in rel if p.startswith('/') or '..' in PurePosixPath(p).parts]):
        raise DataError(f"{path} names {len(out)} files outside its folder {base} (first: {out[0]!r}): paths must be relative to the table's folder")
    if (dup := df[fn][pd.Series(rel).duplicated(keep=False).values]).size:
        raise DataError(f"{path} names file {dup.iloc[0]!r} in {len(dup)} rows: one row per image")
    if (blank := (df[label].str.strip() == '').sum()):
        raise DataError(f"{path}: {blank} rows have no {label!r}; label every image or drop its row")
    if df[label].nunique() < 2:
        raise DataError(f"{path}: column {label!r} holds one class ({df[label].iloc[0]!r}); a classifier needs at least two")
    if split is not None and (bad := sorted(set(df[split].str.lower()) - set(SPLIT_NAMES))):
        raise DataError(f"{path}: column {split!r} holds {bad}; allowed: train, valid (or val), test")
    if (missing := [p for p in rel if not (base/p).is_file()]):
        raise DatasetMissing(f"{path} names {len(missing)} files that do not exist under {base}: {', '.join(missing[:3])}"
                             + (' ...' if len(missing) > 3 else ''))
    return rel, list(df[label]), None if split is None else [SPLIT_NAMES[s.lower()] for s in df[split]]

def _card(arg) -> Path | None: return card_in(_arg(arg)[0].parent)  # the README.md card beside the table

def _check(arg):
    "Options known; a task named after '#' defined by the card beside the table"
    path, _, task = _arg(arg)
    if task is None or not path.is_file(): return
    if (p := _card(arg)) is None: raise DataError(f"csv:{arg} names task {task!r}, but {path.parent} has no README.md card")
    parse_card(p).task(task)

def _ident(arg) -> str:
    "The table's rows and every image's path and bytes (and a task's rule)"
    path, opts, task = _arg(arg)
    rel, cls, split = table_layout(path, opts)
    h = hashlib.sha1(json.dumps([cls, split, opts]).encode()).hexdigest()[:8]
    rule = '' if task is None else '#' + hashlib.sha1(json.dumps(parse_card(_card(arg)).task(task).rule).encode()).hexdigest()[:8]
    return f'{_fingerprint(path.parent, rel)}-{h}{rule}'

@register_dataset('csv:<table>', "a labels table (.csv or .parquet): file, label and optional split (train/valid/test) columns; "
                  "?fn_col=..&label_col=..&valid_col=.. name others; #<task> for a task of the README.md card beside it",
                  ident=_ident, card=_card, check=_check)
def labels_table(arg, size, skip_bad=False):
    "A labels table's images, classes and splits (its split column, else a stratified 80/10/10 split)"
    path, opts, task = _arg(arg)
    query = '&'.join(f'{k}={v}' for k, v in sorted(opts.items()))
    return images_source(f"csv:{path}{'?' + query if query else ''}", path.parent, *table_layout(path, opts), size, skip_bad, task, 'the table\'s split column')
