"""The study's suites, one module each (its configs, tables, report values and claims); importing them registers them in
`ftl.runner.SUITES` in this order, which is the order `--suite all` runs them and the report reads them"""
from . import smoke, architectures, domain_gap, strategies, imbalance, resolution, data_efficiency, levers, headline, benchmark, analysis, report
from ..runner import SUITES, Study, run, run_suite

__all__ = ['SUITES', 'Study', 'run', 'run_suite']
