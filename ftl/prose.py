"""Numbers and claims for the report's prose: formatting (never typing) numbers, and the claims a report's sentences make.
A claim is a sentence with the comparison that makes it true; each study module registers its own (`@claim`)"""
from __future__ import annotations
from dataclasses import dataclass
from typing import Callable
import numpy as np, pandas as pd
from .errors import UserError

__all__ = ['num', 'pct', 'pm', 'table', 'title', 'words', 'lift_constant', 'Claim', 'ClaimFailed', 'CLAIMS', 'claim', 'check_claims']

def num(x, digits=3) -> str:
    "A number for prose: integers as integers, others with `digits` decimals, missing as an em dash"
    if x is None or (isinstance(x, float) and np.isnan(x)): return '—'
    whole = isinstance(x, (int, np.integer)) or (float(x).is_integer() and abs(x) >= 1)  # a count, even 0; a score 0.0 keeps decimals
    return f'{int(x):,}' if whole else f'{x:.{digits}f}'

def pct(x, digits=1) -> str: return '—' if x is None or np.isnan(x) else f'{100*x:.{digits}f} %'

def pm(mean, std, digits=3) -> str: return num(mean, digits) + (f' ± {std:.{digits}f}' if pd.notna(std) else '')

def table(df: pd.DataFrame, cols: dict) -> dict:
    "A table for the typesetter: headers and rows of strings, from `cols` = {header: function of a row}"
    return dict(headers=list(cols), rows=[[f(r) for f in cols.values()] for _, r in df.iterrows()])

def title(arch) -> str:
    "An architecture as a reader knows it (MobileNetV2), not by its registry name"
    from .models import get_arch
    return get_arch(arch).title or arch

MONITOR_NAMES = dict(valid_loss='validation loss', macro_f1='validation macro-F1', accuracy='validation accuracy', last='final epoch')

def words(text: str) -> str:
    "Monitor names in a table cell as words"
    for k, w in MONITOR_NAMES.items(): text = text.replace(k, w)
    return text

def lift_constant(t: dict) -> tuple:
    "A typesetter table without the columns that hold one value in every row, and those columns as 'header: value' words"
    same = [i for i, _ in enumerate(t['headers']) if len(t['rows']) > 1 and len({r[i] for r in t['rows']}) == 1]
    keep = [i for i in range(len(t['headers'])) if i not in same]
    return (dict(headers=[t['headers'][i] for i in keep], rows=[[r[i] for i in keep] for r in t['rows']]),
            [f"{t['headers'][i]}: {t['rows'][0][i]}" for i in same])

@dataclass
class Claim:
    "A comparative sentence of the report and the check that makes it true on the results"
    name: str
    text: str
    check: Callable  # (values) -> bool

class ClaimFailed(UserError): "A claim of the report that the current results no longer support"

CLAIMS: list = []

def claim(name, text):
    "Decorator: register a check as the claim `name`"
    def deco(fn): CLAIMS.append(Claim(name, text, fn)); return fn
    return deco

def check_claims(v: dict) -> list:
    "Every claim whose inputs exist, checked; a `ClaimFailed` naming each one that does not hold"
    out, failed = [], []
    for c in CLAIMS:
        try: holds = bool(c.check(v))
        except KeyError: continue  # its section is not in these results
        out.append(dict(name=c.name, text=c.text, holds=holds))
        if not holds: failed.append(c)
    if failed: raise ClaimFailed('; '.join(f"claim {c.name!r} no longer holds: {c.text}" for c in failed)
                                 + '. Rewrite those sentences of report/report.typ and their claims in ftl/studies')
    return out
