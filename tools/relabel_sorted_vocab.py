"""One-off repair of records written before the class-order fix (commit after ea65334).

fastai's `CategoryBlock(vocab=...)` sorts the vocab unless `sort=False`, so end-to-end runs predicted in alphabetical class
order while `test_metrics` named the classes in the source's order: per-class rows and confusion axes carried permuted
names (accuracy and macro-F1 do not depend on names and were right). This renames them to the true order, checks every
class's support against the test split, and marks the record (`vocab`, `relabelled`). Cached-feature runs were right
(labels straight from the source) and only get `vocab`. Idempotent: records with `vocab` are left alone.
Usage: python tools/relabel_sorted_vocab.py results
"""
import sys
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ftl.data import load_source
from ftl.records import read_records, save_record

def relabel(rec, classes, test_counts):
    "The record with per-class rows and confusion axes in the true class order"
    t = rec['test']
    if rec.get('train_path') != 'cached-features' and sorted(classes) != list(classes):
        perm = [sorted(classes).index(c) for c in classes]  # true position of each source class in the old (sorted) indices
        rows = list(t['per_class'].values())
        conf = np.array(t['confusion'])[np.ix_(perm, perm)]
        t = {**t, 'per_class': {c: rows[j] for c, j in zip(classes, perm)}, 'confusion': conf.tolist(), 'classes': list(classes)}
        rec = {**rec, 'test': t, 'relabelled': 'per-class names and confusion axes reordered (sorted-vocab fix)'}
    got = [t['per_class'][c]['support'] for c in classes]
    if got != test_counts: raise RuntimeError(f"{rec['key']}: supports {got} do not match the test split {test_counts}")
    return {**rec, 'vocab': list(classes)}

if __name__ == '__main__':
    for r in read_records(sys.argv[1] if len(sys.argv) > 1 else 'results'):
        if 'vocab' in r: continue
        src = load_source(r['config']['dataset'], r['config']['size'])
        counts = np.bincount(src.labels[src.idx('test')], minlength=len(src.classes)).tolist()
        path = r.pop('path'); r.pop('suite')
        out = relabel(r, src.classes, counts)
        save_record(out, path)
        print('relabelled' if 'relabelled' in out else 'checked', path)
