"""The study's suites, one module each (its configs, tables, report values and claims). Importing this package imports every
module in it, and each registers itself in `ftl.runner.SUITES` at its `order`: the order `--suite all` runs them and the
report reads them. A new suite is a new module here"""
import importlib, pkgutil
from ..runner import SUITES, Study, run, run_suite, plan

for _m in pkgutil.iter_modules(__path__): importlib.import_module(f'{__name__}.{_m.name}')

__all__ = ['SUITES', 'Study', 'run', 'run_suite', 'plan']
