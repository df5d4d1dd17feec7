"Error analysis on the test set: fastai interpretation of an exported learner, and misclassified images by failure category"
from __future__ import annotations
from pathlib import Path
import numpy as np, pandas as pd, torch
from scipy import ndimage
from fastai.vision.all import ClassificationInterpretation, load_learner
from .data import load_source, labelled_test_dl, source_items
from .features import pooled_features

__all__ = ['interpret', 'image_quality', 'embeddings', 'error_evidence', 'categorize', 'failure_table', 'per_class_table', 'analyse',
           'CATEGORIES', 'THRESHOLDS']

CATEGORIES = ['poor image quality', 'possible labelling error', 'confusable classes', 'ambiguous / domain difficulty']
THRESHOLDS = dict(quality_z=2.5, confident=0.8, neighbour_agree=0.6, k=10, top_pairs=3)

def interpret(learn_or_path, dataset=None, size=None, source=None) -> ClassificationInterpretation:
    "fastai `ClassificationInterpretation` on the TEST split (not validation): `interp.plot_top_losses(9)` works as usual"
    learn = load_learner(learn_or_path, cpu=not torch.cuda.is_available()) if isinstance(learn_or_path, (str, Path)) else learn_or_path
    source = source or load_source(dataset, size)
    dl = labelled_test_dl(learn.dls, source)
    preds, targs, losses = learn.get_preds(dl=dl, with_loss=True)  # predictions computed once, kept on the interpretation
    interp = ClassificationInterpretation(learn, dl, losses)
    interp.preds, interp.targs, interp.source = preds, targs, source
    return interp

def image_quality(images) -> pd.DataFrame:
    "Per image: sharpness (variance of the Laplacian), contrast (intensity std) and exposure (mean), on 0-255 gray"
    rows = []
    for a in images:
        g = np.asarray(a, np.float32)
        if g.ndim == 3: g = g.mean(-1)
        rows.append(dict(sharpness=float(ndimage.laplace(g).var()), contrast=float(g.std()), exposure=float(g.mean())))
    return pd.DataFrame(rows)

def embeddings(learn, dl) -> np.ndarray:
    "Pooled backbone features (the head's input) for every item of `dl`, L2-normalised"
    f = pooled_features(learn, dl)
    return (f/f.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy()

def error_evidence(probs, y_true, test_emb, train_emb, train_labels, test_quality, train_quality, confused_pairs, k=10) -> pd.DataFrame:
    "Evidence per test image: confidence, margin, centroid similarities, neighbour votes, quality z-scores, pair rank"
    probs, y_true, train_labels = np.asarray(probs), np.asarray(y_true), np.asarray(train_labels)
    pred = probs.argmax(1); top2 = np.sort(probs, 1)[:, -2:]
    cents = np.stack([train_emb[train_labels == c].mean(0) for c in range(probs.shape[1])])
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    sim = test_emb @ cents.T
    nn_idx = np.argsort(-(test_emb @ train_emb.T), 1)[:, :k]
    stats = {c: (train_quality[train_labels == c].mean(), train_quality[train_labels == c].std().replace(0, 1e-9))
             for c in range(probs.shape[1])}
    z = np.stack([((test_quality.iloc[i] - stats[y_true[i]][0])/stats[y_true[i]][1]).values for i in range(len(y_true))])
    rank = {pair: r for r, pair in enumerate(confused_pairs)}
    return pd.DataFrame(dict(true=y_true, pred=pred, confidence=probs.max(1), margin=top2[:, 1] - top2[:, 0],
                             sim_true=sim[np.arange(len(y_true)), y_true], sim_pred=sim[np.arange(len(y_true)), pred],
                             neighbour_agree=(train_labels[nn_idx] == pred[:, None]).mean(1),
                             **{f'{q}_z': z[:, j] for j, q in enumerate(test_quality.columns)},
                             pair_rank=[rank.get((t, p), -1) for t, p in zip(y_true, pred)]))

def categorize(e, th=THRESHOLDS) -> str:
    "The suggested failure category of one misclassified image from its evidence row"
    if max(abs(e['sharpness_z']), abs(e['contrast_z']), abs(e['exposure_z'])) > th['quality_z']: return CATEGORIES[0]
    if e['confidence'] >= th['confident'] and e['neighbour_agree'] >= th['neighbour_agree']: return CATEGORIES[1]
    if 0 <= e['pair_rank'] < th['top_pairs'] and e['sim_pred'] > e['sim_true']: return CATEGORIES[2]
    return CATEGORIES[3]

def failure_table(interp, n=16, th=THRESHOLDS) -> pd.DataFrame:
    "The `n` highest-loss misclassified test images with evidence, a suggested category and an empty commentary column"
    learn, source = interp.learn, interp.source
    classes = list(interp.vocab)
    test_idx, train_idx = source.idx('test'), source.idx('train')
    probs, y_true = interp.preds.numpy(), interp.targs.numpy()
    train_dl = learn.dls.test_dl(source_items(source, train_idx), with_labels=True)
    name2i = {c: i for i, c in enumerate(classes)}
    train_y = np.array([name2i[source.classes[l]] for l in source.labels[train_idx]])
    pairs = [(name2i[a], name2i[b]) for a, b, _ in interp.most_confused()]
    q_test, q_train = image_quality(source.images[test_idx]), image_quality(source.images[train_idx])
    ev = error_evidence(probs, y_true, embeddings(learn, interp.dl), embeddings(learn, train_dl), train_y, q_test, q_train,
                        pairs, th['k'])
    ev['loss'], ev['test_pos'] = interp.losses.numpy(), np.arange(len(ev))
    ids = source.info.get('ids', np.array([str(i) for i in range(len(source.labels))]))
    wrong = ev[ev.true != ev.pred].sort_values('loss', ascending=False).head(n).copy()
    wrong.insert(0, 'image_id', [ids[test_idx[i]] for i in wrong.test_pos])
    wrong['category'] = [categorize(r, th) for _, r in wrong.iterrows()]
    for j, c in enumerate(classes): wrong[f'p_{c}'] = probs[wrong.test_pos, j]
    wrong['true'], wrong['pred'] = [classes[i] for i in wrong.true], [classes[i] for i in wrong.pred]
    wrong['commentary'] = ''
    return wrong.reset_index(drop=True)

def per_class_table(test: dict) -> pd.DataFrame:
    "Per-class precision / recall / F1 / support with the best and worst class (by F1) marked"
    df = pd.DataFrame(test['per_class']).T.rename_axis('class').reset_index()
    df['support'] = df.support.astype(int)
    df['mark'] = ''
    df.loc[df.f1.idxmax(), 'mark'], df.loc[df.f1.idxmin(), 'mark'] = 'best', 'worst'
    return df

def analyse(model_path, record, out_dir, figs_dir, n_errors=16) -> dict:
    "Reload an exported learner, check it reproduces its record on the test split, and write the error analysis"
    from . import figures
    from .tables import write_table
    cfg = record.config
    interp = interpret(model_path, cfg['dataset'], cfg['size'])
    acc = float((interp.preds.argmax(1) == interp.targs).float().mean())
    if abs(acc - record.test['accuracy']) > 1e-6:
        raise RuntimeError(f"Reloaded model {model_path} scores test accuracy {acc:.4f}, its record {record.test['accuracy']:.4f}")
    out, figs = Path(out_dir), Path(figs_dir)
    title = f"{cfg['arch']}, {cfg['strategy']}, augmentation {cfg['augment']} on {cfg['dataset']} test set"
    figures.confusion(record.test, figs/'confusion_best', title)
    write_table(per_class_table(record.test), out/'per_class')
    pd.DataFrame(interp.most_confused(), columns=['true', 'predicted', 'count']).to_csv(out/'most_confused.csv', index=False)
    errors = failure_table(interp, n_errors)
    errors.drop(columns=['test_pos']).to_csv(out/'errors.csv', index=False)
    src = interp.source
    figures.error_gallery(errors, src.images[src.idx('test')[errors.test_pos]], figs/'error_gallery',
                          title=f'Misclassified test images by suggested failure category: {title}')
    interp.plot_top_losses(9, figsize=(9, 9))
    import matplotlib.pyplot as plt
    figures.save(plt.gcf(), figs/'top_losses')
    return dict(record=record, errors=errors, interp=interp, reloaded_accuracy=acc)
