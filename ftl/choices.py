"Choices made on validation alone, from the records of earlier suites: the grids' backbone and the best cell"
from __future__ import annotations
import numpy as np
from .errors import UserError
from .config import Config, grid_runs
from .records import Record, cell_key, records_frame
from .metrics import PRIMARY
from .runner import Study, suite_records
from . import tables

__all__ = ['best_arch', 'best_valid_arch', 'best_record', 'best_cell']

def best_arch(study: Study, default=Config.arch) -> str:
    """The architecture the grid suites (strategies, data efficiency) build on (the default before any architectures run):
    among those whose grid fits the preset's budget, the smallest (fewest parameters) whose mean validation macro-F1 is
    within one standard error of the best mean (the one-standard-error rule); with one seed per architecture, the best"""
    df = records_frame(suite_records('architectures', study))
    if not len(df): return default
    return tables.one_se_choice(tables.grid_candidates(df, study.settings.get('grid_hours'), grid_runs(study.preset)))

def best_valid_arch(study: Study, default=Config.arch) -> str:
    "The architecture of the architectures suite's best cell by mean validation macro-F1, whatever its cost (the default before any run)"
    recs = suite_records('architectures', study)
    return best_cell(recs)[0].config['arch'] if recs else default

def best_cell(records) -> list:
    "The records of the best cell (a configuration over its seeds) by the mean of the primary metric on validation at the restored epoch"
    cells = {}
    for r in {r.key: r for r in records}.values(): cells.setdefault(cell_key(r), []).append(r)  # a config two suites share counts once
    return max(cells.values(), key=lambda rs: (np.mean([r.best[PRIMARY] for r in rs]), min(r.key for r in rs)))

def best_record(study: Study, suites=('architectures', 'strategies')) -> Record:
    "The best cell of the study's `suites` on validation, chosen without the test set; its run with the lowest seed"
    recs = [r for s in suites for r in suite_records(s, study)]
    if not recs:
        raise UserError(f"No records of {list(suites)} under {study.results} for preset {study.preset!r}: run "
                        + ' and '.join(f'--suite {s}' for s in suites) + " first (or --suite all)")
    return min(best_cell(recs), key=lambda r: r.config['seed'])
