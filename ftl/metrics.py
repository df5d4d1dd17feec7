"""The metric registry, in the shape of scikit-learn's scorers: a name maps to its function of labels and predictions, its
label in tables and prose, and its direction. Training, records, tables, figures and the report derive their columns from it"""
from __future__ import annotations
from dataclasses import dataclass
from functools import partial
from typing import Callable
from sklearn.metrics import accuracy_score, f1_score

__all__ = ['Metric', 'METRICS', 'PRIMARY', 'register_metric', 'get_metric', 'scores', 'fastai_metrics', 'columns']

@dataclass(frozen=True)
class Metric:
    "A classification metric: `fn(y_true, y_pred, labels)` -> float, how tables and prose name it, and which way is better"
    name: str
    fn: Callable
    label: str
    greater_is_better: bool = True
    def __call__(self, y_true, y_pred, labels) -> float: return float(self.fn(y_true, y_pred, labels=labels))
    def fastai(self):
        "The same metric as fastai computes it on a validation epoch (argmax of the predictions)"
        from fastai.metrics import skm_to_fastai
        return skm_to_fastai(lambda y, p: self.fn(y, p, labels=None), name=self.name)

METRICS: dict = {}  # name -> Metric, in the order tables show them

def register_metric(name, fn, label, greater_is_better=True) -> Metric:
    "Add a metric to every record, table and figure from now on"
    METRICS[name] = Metric(name, fn, label, greater_is_better)
    return METRICS[name]

register_metric('accuracy', lambda y, p, labels=None: accuracy_score(y, p), 'accuracy')
register_metric('macro_f1', partial(f1_score, average='macro', zero_division=0), 'macro-F1')

PRIMARY = 'macro_f1'  # the measure that chooses (epochs, cells, backbones) and that the report reads first: robust to imbalance

def get_metric(name: str) -> Metric:
    "The registered metric `name`, or an error listing the registered ones"
    from .errors import ConfigError
    if name not in METRICS: raise ConfigError(f"Unknown metric {name!r}; registered: {list(METRICS)} (ftl.metrics.register_metric adds one)")
    return METRICS[name]

def scores(y_true, y_pred, labels) -> dict:
    "Every registered metric of predictions `y_pred` against `y_true`"
    return {m.name: m(y_true, y_pred, labels) for m in METRICS.values()}

def fastai_metrics() -> list: return [m.fastai() for m in METRICS.values()]

def columns(prefix: str) -> list:
    "The records-frame columns of every metric under `prefix` ('valid', 'test', 'tta')"
    return [f'{prefix}_{m}' for m in METRICS]
