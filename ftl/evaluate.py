"Test-set metrics as pure functions of labels and predictions (scikit-learn underneath)"
from __future__ import annotations
import numpy as np
from sklearn.metrics import precision_recall_fscore_support, confusion_matrix
from .metrics import scores

__all__ = ['test_metrics', 'majority_baseline']

def test_metrics(y_true, y_pred, classes) -> dict:
    "Every registered metric, per-class precision/recall/F1/support and the confusion matrix (rows: true, cols: predicted)"
    y_true, y_pred, labels = np.asarray(y_true), np.asarray(y_pred), np.arange(len(classes))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return dict(**scores(y_true, y_pred, labels),
                per_class={c: dict(precision=float(p[i]), recall=float(r[i]), f1=float(f[i]), support=int(s[i]))
                           for i, c in enumerate(classes)},
                confusion=confusion_matrix(y_true, y_pred, labels=labels).tolist(), classes=list(classes))

def majority_baseline(test: dict) -> dict:
    "Every registered metric of always predicting the most frequent test class, as `test_<metric>`"
    support = np.array([c['support'] for c in test['per_class'].values()])
    y_true = np.repeat(np.arange(len(support)), support)
    return {f'test_{k}': x for k, x in scores(y_true, np.full(len(y_true), support.argmax()), np.arange(len(support))).items()}
