"Test-set metrics as pure functions of labels and predictions (scikit-learn underneath)"
from __future__ import annotations
import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support, confusion_matrix

__all__ = ['test_metrics', 'majority_baseline']

def test_metrics(y_true, y_pred, classes) -> dict:
    "Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows: true, cols: predicted)"
    y_true, y_pred, labels = np.asarray(y_true), np.asarray(y_pred), np.arange(len(classes))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return dict(accuracy=float(accuracy_score(y_true, y_pred)),
                macro_f1=float(f1_score(y_true, y_pred, labels=labels, average='macro', zero_division=0)),
                per_class={c: dict(precision=float(p[i]), recall=float(r[i]), f1=float(f[i]), support=int(s[i]))
                           for i, c in enumerate(classes)},
                confusion=confusion_matrix(y_true, y_pred, labels=labels).tolist(), classes=list(classes))

def majority_baseline(test: dict) -> dict:
    "Accuracy and macro-F1 of always predicting the most frequent test class (its F1 is 2p/(1+p), every other class's 0)"
    support = [c['support'] for c in test['per_class'].values()]
    p = max(support)/sum(support)
    return dict(test_accuracy=p, test_macro_f1=2*p/(1 + p)/len(support))
