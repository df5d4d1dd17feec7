"""Numbers and claims for the report's prose: formatting (never typing) numbers, the tests claims carry, and the claims.
A claim is a statement with the test that decides it; each study module registers its own (`@claim`), and the report's
template writes one sentence for each outcome, so the text is true whatever the results"""
from __future__ import annotations
from dataclasses import dataclass
from typing import Callable
import numpy as np, pandas as pd

__all__ = ['num', 'pct', 'pm', 'table', 'title', 'words', 'lift_constant', 'ALPHA', 'p_words', 'welch', 'sign_test', 'wilson', 'interval',
           'Claim', 'CLAIMS', 'claim', 'check_claims']

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

ALPHA = 0.05  # the level every claim's test is read at

def p_words(p: float) -> str:
    "A p-value for prose (none: too few runs to test)"
    return 'no test (one run each)' if not np.isfinite(p) else 'p < 0.001' if p < 0.001 else f'p = {p:.3f}' if p < 0.01 else f'p = {p:.2f}'

def welch(a, b) -> tuple:
    "Mean of `a` minus mean of `b` and the two-sided p of Welch's t-test between the two groups (nan with fewer than two each)"
    from scipy import stats
    a, b = (np.asarray(x, float)[~np.isnan(np.asarray(x, float))] for x in (a, b))
    if min(len(a), len(b)) < 2: return float(a.mean() - b.mean()) if len(a) and len(b) else np.nan, np.nan
    return float(a.mean() - b.mean()), float(stats.ttest_ind(a, b, equal_var=False).pvalue)

def sign_test(wins: int, n: int) -> float:
    "Two-sided p of the sign test: `wins` of `n` paired comparisons (ties dropped) went one way"
    from scipy import stats
    return float(stats.binomtest(int(wins), int(n), 0.5).pvalue) if n else np.nan

def wilson(k: int, n: int) -> tuple:
    "The 95 % Wilson interval of a proportion `k` of `n` (an accuracy on a test set of `n` images)"
    from scipy import stats
    ci = stats.binomtest(int(k), int(n)).proportion_ci(0.95, method='wilson')
    return float(ci.low), float(ci.high)

def interval(d, lo, hi, digits=3) -> str:
    "A mean difference and its 95 % interval in words (a single pair has none)"
    return f'{d:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]' if np.isfinite(lo) else f'{d:+.{digits}f} (one pair: no interval)'

@dataclass
class Claim:
    "A comparative statement of the report, the test it carries, and the check that returns its outcome on the results"
    name: str
    text: str       # the statement, one line
    test: str       # the test the check applies, in words
    check: Callable  # raw values -> bool, or (bool, evidence in words: the test's numbers)

CLAIMS: dict = {}  # name -> Claim, registered by the study modules

def claim(name, text, test='a comparison of means, no test'):
    "Decorator: register a check (raw values -> outcome) as the claim `name`"
    def deco(fn):
        if name in CLAIMS and CLAIMS[name].check.__module__ != fn.__module__: raise ValueError(f"claim {name!r} is registered twice")
        CLAIMS[name] = Claim(name, text, test, fn); return fn
    return deco

def check_claims(raw: dict) -> dict:
    """Every claim whose inputs exist in `raw`: name -> its outcome (`holds`), statement, test and evidence. A claim whose
    inputs are missing (its suite has not run) gets no outcome; one that does not hold is an outcome, not an error: the
    report's template picks the sentence written for it"""
    out = {}
    for c in CLAIMS.values():
        try: r = c.check(raw)
        except KeyError: continue
        holds, evidence = r if isinstance(r, tuple) else (r, '')
        out[c.name] = dict(text=c.text, test=c.test, holds=bool(holds), evidence=evidence)
    return out
