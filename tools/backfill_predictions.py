"""Add the restored model's validation and test predictions to a committed record that predates them, from the learner
exported with that record (never by retraining): the ensemble and the derived tasks of the headline are scored from them.

What changes, and why: `predictions` is filled in and a note says so; nothing else. The learner's test accuracy must equal
the record's, else the record is left alone (the learner is not the recorded model). Idempotent.
Usage: python tools/backfill_predictions.py RECORD.json LEARNER.pkl
"""
import sys, warnings
from dataclasses import replace
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings('ignore')
import numpy as np, torch
from fastai.learner import load_learner
from ftl.data import load_source, source_items
from ftl.records import load_record, save_record

def backfill(record_path, learner_path):
    "Fill the record's predictions from the exported learner, checked against its test accuracy"
    rec = load_record(record_path)
    if rec.predictions: return print(f"{record_path}: has predictions already")
    learn = load_learner(learner_path, cpu=not torch.cuda.is_available())
    source = load_source(rec.config['dataset'], rec.config['size'], rec.config.get('skip_bad_images', False))
    preds = {}
    for split in ('valid', 'test'):
        probs, targs = learn.get_preds(dl=learn.dls.test_dl(source_items(source, source.idx(split)), with_labels=True))
        preds[split] = dict(probs=np.round(probs.float().numpy(), 5).tolist(), targets=targs.numpy().astype(int).tolist())
    acc = float((np.array(preds['test']['probs']).argmax(1) == np.array(preds['test']['targets'])).mean())
    if abs(acc - rec.test['accuracy']) > 1e-9:
        sys.exit(f"{learner_path} scores test accuracy {acc:.4f}, {record_path} says {rec.test['accuracy']:.4f}: not the recorded model")
    note = f"predictions added by tools/backfill_predictions.py from {Path(learner_path).name} (test accuracy reproduced: {acc:.4f})"
    save_record(replace(rec, predictions=preds, notes=[*rec.notes, note]).validate(), record_path)
    print(f"{record_path}: {note}")

if __name__ == '__main__': backfill(*sys.argv[1:3])
