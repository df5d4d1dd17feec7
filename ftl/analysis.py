"""Error analysis on the test split: fastai's interpretation of an exported learner, where the model looked (Grad-CAM),
which labels are suspect on evidence independent of the model (cleanlab over another backbone's cross-validated
probabilities), how wrong each error is (ordinal distance between defect levels), and a failure category per error"""
from __future__ import annotations
import json
from pathlib import Path
import numpy as np, pandas as pd, torch
from scipy import ndimage
from fastcore.basics import patch
from fastai.vision.all import ClassificationInterpretation, load_learner
from .data import load_source, labelled_test_dl
from . import files

__all__ = ['interpret', 'cam_target', 'class_activation_maps', 'out_of_sample_probs', 'label_issues', 'suspect_labels', 'ordinal_errors',
           'error_gallery', 'probe_features',
           'image_quality', 'error_evidence', 'categorize', 'failure_table', 'GALLERY', 'select_errors', 'per_class_table', 'with_commentary', 'analyse', 'CATEGORIES', 'RULES',
           'THRESHOLDS']

CATEGORIES = ['unusual image quality', 'possible labelling error', 'ambiguous or visually similar', 'genuine domain difficulty']
THRESHOLDS = dict(quality_z=2.5, folds=5)
NOISE = dict(rtol=1e-4, atol=1e-4, pixels=0.01)  # fp32 inference on another CPU: BLAS summation order moves probabilities by ~1e-6; a heatmap's colours by a shade
TOL = 1e-8  # the probe's logistic regression converges to this tolerance: its probabilities no longer depend on BLAS threads
RULES = {  # each category's rule, applied in this order; the first that holds names the error
    CATEGORIES[0]: f"sharpness, contrast or exposure more than {THRESHOLDS['quality_z']} standard deviations from the true class's training images",
    CATEGORIES[1]: 'cleanlab flags the label from another backbone\'s cross-validated probabilities (evidence independent of the analysed model)',
    CATEGORIES[2]: 'true and predicted classes are adjacent levels (or the only two classes): the labels encode annotator confidence',
    CATEGORIES[3]: 'none of the above: a far error on a clean, confidently labelled image',
}

def interpret(learn_or_path, dataset=None, size=None, source=None) -> ClassificationInterpretation:
    """fastai `ClassificationInterpretation` on the TEST split (not validation), in fp32 whatever precision the model trained in
    (its master weights are fp32; bf16 kernels differ between CPUs): `interp.plot_top_losses(9)` works as usual"""
    learn = load_learner(learn_or_path, cpu=not torch.cuda.is_available()) if isinstance(learn_or_path, (str, Path)) else learn_or_path
    learn.to_fp32()  # drops fastai's MixedPrecision callbacks (fp16, bf16, ftl's CPU bf16)
    source = source or load_source(dataset, size)
    dl = labelled_test_dl(learn.dls, source)
    preds, targs, losses = learn.get_preds(dl=dl, with_loss=True)  # predictions computed once, kept on the interpretation
    interp = ClassificationInterpretation(learn, dl, losses)
    interp.preds, interp.targs, interp.source = preds, targs, source
    n = len(interp.vocab); cm = np.bincount(targs.numpy()*n + preds.argmax(1).numpy(), minlength=n*n).reshape(n, n)
    interp.confusion_matrix = lambda: cm.copy()  # fastai's predicts the whole split again: the predictions above, counted
    return interp

# --- where the model looked -----------------------------------------------------------------------------------------------

def cam_target(model) -> tuple:
    "Grad-CAM target layer and reshape of an ftl (fastai over timm) model: last feature layer of a CNN, last block of a ViT"
    net = model[0].model
    if hasattr(net, 'blocks') and hasattr(net, 'patch_embed') and hasattr(net, 'cls_token'):  # a timm ViT: tokens -> grid
        n_prefix = getattr(net, 'num_prefix_tokens', 1)
        def reshape(t):
            t = t[:, n_prefix:]; side = int(round(t.shape[1]**0.5))
            return t.reshape(t.shape[0], side, side, t.shape[2]).permute(0, 3, 1, 2)
        return net.blocks[-1].norm1, reshape
    for name in ('bn2', 'conv_head'):  # timm CNNs: the last feature layer before pooling
        if getattr(net, name, None) is not None: return getattr(net, name), None
    return [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1], None

def class_activation_maps(model, x: torch.Tensor, classes, target=None) -> np.ndarray:
    "Grad-CAM maps in [0, 1] at the input's size, one per image of batch `x` for class index `classes[i]`"
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    layer, reshape = target or cam_target(model)
    model, frozen = model.eval(), [p for p in model.parameters() if not p.requires_grad]
    for p in frozen: p.requires_grad_(True)  # a frozen backbone (feature extraction) still passes gradients to its maps
    try:
        with GradCAM(model=model, target_layers=[layer], reshape_transform=reshape) as cam:
            return cam(input_tensor=x.as_subclass(torch.Tensor).float(), targets=[ClassifierOutputTarget(int(c)) for c in classes])
    finally:
        for p in frozen: p.requires_grad_(False)

def _batch(learn, images) -> torch.Tensor:
    "Decoded images through the learner's own validation pipeline (normalised, on its device)"
    dl = learn.dls.test_dl(list(images), bs=len(images))
    return dl.one_batch()[0]

@patch
def plot_gradcam(self: ClassificationInterpretation, k=9, largest=True, figsize=None):
    "Grad-CAM of the predicted class over the `k` top-loss test images (beside `plot_top_losses`)"
    import matplotlib.pyplot as plt
    losses, idx = self.top_losses(k, largest)
    src = self.source
    images = src.images[src.idx('test')[idx]]
    preds = self.preds[idx].argmax(1)
    maps = class_activation_maps(self.learn.model, _batch(self.learn, images), preds)
    cols = int(np.ceil(np.sqrt(k))); rows = int(np.ceil(k/cols))
    fig, axes = plt.subplots(rows, cols, figsize=figsize or (3*cols, 3*rows), squeeze=False)
    for ax, img, m, i, p, l in zip(axes.flat, images, maps, idx, preds, losses):
        ax.imshow(img, cmap='gray'); ax.imshow(m, cmap='jet', alpha=0.4); ax.axis('off')
        ax.set_title(f"{self.vocab[int(self.targs[i])]} / {self.vocab[int(p)]} / {float(l):.2f}", fontsize=8)
    for ax in axes.flat[k:]: ax.axis('off')
    fig.suptitle('true / predicted / loss, Grad-CAM of the predicted class', fontsize=9)
    return fig

# --- suspect labels, from evidence independent of the analysed model ------------------------------------------------------

def out_of_sample_probs(features, labels, folds=THRESHOLDS['folds'], seed=0) -> np.ndarray:
    """Cross-validated class probabilities of a class-balanced logistic regression on `features`: each image predicted by a
    model that never saw it. One BLAS and OpenMP thread, so the same features give the same bits on any machine's thread count
    (at sklearn's defaults two threads moved ELPV's probabilities by up to 0.16); float64 fitted to L-BFGS's limit, so features
    that differ in the last bit move a probability by ~1e-5, not ~0.1"""
    from threadpoolctl import threadpool_limits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight='balanced', tol=TOL, max_iter=20000))
    with threadpool_limits(1):
        return cross_val_predict(clf, np.asarray(features, np.float64), labels, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                                 method='predict_proba')

def label_issues(labels, probs) -> pd.DataFrame:
    "cleanlab's verdict per image: flagged as a likely label issue, and its label-quality score (low: suspect; to 6 decimals)"
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    labels = np.asarray(labels)
    return pd.DataFrame(dict(label_issue=find_label_issues(labels, probs, n_jobs=1),  # one process: no pool forked per call
                             label_quality=get_label_quality_scores(labels, probs).round(6)))

# --- how wrong ------------------------------------------------------------------------------------------------------------

def ordinal_errors(confusion, classes) -> dict:
    "Errors of ordered classes read both ways: share between adjacent levels, far apart, and between the two ends (first <-> last)"
    cm = np.asarray(confusion); n = len(classes)
    dist = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    wrong = cm[dist > 0].sum()
    ends = cm[0, n - 1] + cm[n - 1, 0]
    return dict(errors=int(wrong), adjacent=int(cm[dist == 1].sum()), far=int(cm[dist > 1].sum()), ends=int(ends),
                adjacent_share=float(cm[dist == 1].sum()/max(wrong, 1)), far_share=float(cm[dist > 1].sum()/max(wrong, 1)),
                ends_share=float(ends/max(wrong, 1)), ends_pair=f'{classes[0]} <-> {classes[-1]}')

def image_quality(images) -> pd.DataFrame:
    "Per image: sharpness (variance of the Laplacian), contrast (intensity std) and exposure (mean), on 0-255 gray"
    rows = []
    for a in images:
        g = np.asarray(a, np.float32)
        if g.ndim == 3: g = g.mean(-1)
        rows.append(dict(sharpness=float(ndimage.laplace(g).var()), contrast=float(g.std()), exposure=float(g.mean())))
    return pd.DataFrame(rows)

def error_evidence(probs, y_true, test_quality, train_quality, train_labels, issues) -> pd.DataFrame:
    "Evidence per test image: confidence, margin, ordinal distance, quality z-scores against its class, cleanlab's verdict"
    probs, y_true, train_labels = np.asarray(probs), np.asarray(y_true), np.asarray(train_labels)
    pred = probs.argmax(1); top2 = np.sort(probs, 1)[:, -2:]
    stats = {c: (train_quality[train_labels == c].mean(), train_quality[train_labels == c].std().replace(0, 1e-9))
             for c in range(probs.shape[1])}
    z = np.stack([((test_quality.iloc[i] - stats[y_true[i]][0])/stats[y_true[i]][1]).values for i in range(len(y_true))])
    return pd.DataFrame(dict(true=y_true, pred=pred, confidence=probs.max(1), margin=top2[:, 1] - top2[:, 0],
                             ordinal_distance=np.abs(pred - y_true), **{f'{q}_z': z[:, j] for j, q in enumerate(test_quality.columns)},
                             label_issue=np.asarray(issues.label_issue), label_quality=np.asarray(issues.label_quality)))

def categorize(e, n_classes=None, th=THRESHOLDS) -> str:
    "The failure category of one misclassified image from its evidence row (RULES, in order)"
    if max(abs(e['sharpness_z']), abs(e['contrast_z']), abs(e['exposure_z'])) > th['quality_z']: return CATEGORIES[0]
    if e['label_issue']: return CATEGORIES[1]
    if e['ordinal_distance'] == 1: return CATEGORIES[2]
    return CATEGORIES[3]

def failure_table(interp, issues) -> pd.DataFrame:
    "Every misclassified test image, highest loss first, with its evidence and its category"
    source, classes = interp.source, list(interp.vocab)
    test_idx, train_idx = source.idx('test'), source.idx('train')
    probs, y_true = interp.preds.numpy(), interp.targs.numpy()
    ev = error_evidence(probs, y_true, image_quality(source.images[test_idx]), image_quality(source.images[train_idx]),
                        source.labels[train_idx], issues.iloc[test_idx].reset_index(drop=True))
    ev['loss'], ev['test_pos'] = interp.losses.numpy(), np.arange(len(ev))
    ids = source.info.get('ids', np.array([str(i) for i in range(len(source.labels))]))
    wrong = ev[ev.true != ev.pred].sort_values('loss', ascending=False, kind='stable').copy()  # ties: test order
    wrong.insert(0, 'image_id', [ids[test_idx[i]] for i in wrong.test_pos])
    wrong['category'] = [categorize(r) for _, r in wrong.iterrows()]
    for j, c in enumerate(classes): wrong[f'p_{c}'] = probs[wrong.test_pos, j]
    wrong['true'], wrong['pred'] = [classes[i] for i in wrong.true], [classes[i] for i in wrong.pred]
    return wrong.reset_index(drop=True)

def _category_counts(errors) -> dict:
    "How many of `errors` fall in each category that occurs, in the rules' order"
    n = errors.category.value_counts()
    return {c: int(n[c]) for c in CATEGORIES if c in n}

GALLERY = 12  # errors a person looks at: every category that occurs, the highest-loss ones of each in turn

def select_errors(errors: pd.DataFrame, n=GALLERY) -> pd.DataFrame:
    """The gallery: the highest-loss error of each category that occurs, then the next of each, and so on, `n` in all
    (every category is shown when there are at most `n` of them), highest loss first"""
    turn = errors.groupby('category', sort=False).cumcount()  # `errors` is highest loss first: each error's place in its category
    pick = errors.assign(_turn=turn).sort_values(['_turn', 'loss'], ascending=[True, False], kind='stable').head(n)
    return pick.drop(columns='_turn').sort_values('loss', ascending=False, kind='stable').reset_index(drop=True)

def per_class_table(test: dict) -> pd.DataFrame:
    "Per-class precision / recall / F1 / support with the best and worst class (by F1) marked"
    df = pd.DataFrame(test['per_class']).T.rename_axis('class').reset_index()
    df['support'] = df.support.astype(int)
    df['mark'] = ''
    df.loc[df.f1.idxmax(), 'mark'], df.loc[df.f1.idxmin(), 'mark'] = 'best', 'worst'
    return df

def _full_resolution(source, i) -> np.ndarray:
    "Image `i` of `source` as stored on disk (the native cell, not the training size), else as decoded"
    files = source.info.get('files')
    if files is None: return source.images[i]
    from .data import decode_image
    from PIL import Image
    with Image.open(files[i]) as im: return decode_image(im, max(im.size), source.mode)

def same_table(a, b) -> bool: return files.same_table(a, b, NOISE['rtol'], NOISE['atol'])
def same_picture(a, b) -> bool: return files.same_picture(a, b, NOISE['pixels'])
def keep_table(df, path) -> pd.DataFrame: return files.keep_table(df, path, same_table)

def analyse(model_path, record, out_dir, figs_dir, n_errors=GALLERY, probe_arch=None, probe_size=224) -> dict:
    "Reload an exported learner, check it reproduces its record on the test split, and write the error analysis"
    from . import figures
    from .tables import write_table
    cfg = record.config
    interp = interpret(model_path, cfg['dataset'], cfg['size'])
    inference = reloaded_check(interp, record, model_path)
    out, figs, src = Path(out_dir), Path(figs_dir), interp.source
    from .models import get_arch
    title = f"{get_arch(cfg['arch']).title}, {cfg['strategy']}, augmentation {cfg['augment']}, {cfg['size']} px"
    figures.confusion(record.test, figs/'confusion_best', title)
    write_table(per_class_table(record.test), out/'per_class')
    pd.DataFrame(interp.most_confused(), columns=['true', 'predicted', 'count']).to_csv(out/'most_confused.csv', index=False)
    issues = suspect_labels(src, cfg['dataset'], probe_arch or next(a for a in ('vit_small_dinov2', 'efficientnet_lite0') if a != cfg['arch']), probe_size, out)
    every = failure_table(interp, issues)
    errors = select_errors(every, n_errors)  # a person's commentary stays in commentary.csv: the report joins it, so new words need no rerun
    kept = keep_table(errors.drop(columns=['test_pos']), out/'errors.csv')  # summation-order noise on another CPU rewrites nothing
    pics = None if kept.attrs['rewritten'] else same_picture  # new numbers in the table: the pictures that print them are redrawn
    errors = kept.assign(test_pos=errors.test_pos)
    test_wrong = (interp.preds.argmax(1) != interp.targs).numpy()
    test_issue = issues.label_issue.values[src.idx('test')]
    summary = dict(model=record.key, probe=issues.attrs['probe'], inference=inference,
                   label_issues={s: int(issues.label_issue[src.split == s].sum()) for s in ('train', 'valid', 'test')},
                   images={s: int((src.split == s).sum()) for s in ('train', 'valid', 'test')},
                   test_errors=int(test_wrong.sum()), test_errors_flagged=int((test_wrong & test_issue).sum()),
                   selected_errors_flagged=int(errors.label_issue.sum()),
                   categories=_category_counts(every), shown_categories=_category_counts(errors),  # every test error; those shown
                   ordinal=ordinal_errors(record.test['confusion'], record.test['classes']), rules=RULES)
    (out/'summary.json').write_text(json.dumps(summary, indent=1))
    if len(errors): error_gallery(interp, errors, figs/'error_gallery', title=f'Misclassified test cells by failure category ({title})', same=pics)
    interp.plot_top_losses(min(9, len(interp.losses)), figsize=(9, 9))
    import matplotlib.pyplot as plt
    figures.save(plt.gcf(), figs/'top_losses', same=pics)
    return dict(record=record, errors=errors, interp=interp, inference=inference, summary=summary)

MOVED = 0.02  # at most this share of test predictions may change when a model trained in reduced precision is analysed in fp32

def reloaded_check(interp, record, model_path) -> dict:
    """The reloaded model's fp32 test predictions against its record's (made in the precision it trained in): equal for an
    fp32 model; for bf16 or fp16, at most MOVED of them changed, else it is not the recorded model"""
    pred, y, trained = interp.preds.argmax(1).numpy(), interp.targs.numpy(), record.hyperparams.get('precision', 'fp32')
    moved = int((pred != np.array(record.predictions['test']['probs']).argmax(1)).sum())
    out = dict(precision='fp32', trained=trained, accuracy=float((pred == y).mean()), record_accuracy=record.test['accuracy'], moved=moved)
    if moved > (0 if trained == 'fp32' else MOVED*len(y)):
        raise RuntimeError(f"Reloaded model {model_path} changes {moved} of {len(y)} test predictions in fp32 (trained in {trained}): "
                           f"test accuracy {out['accuracy']:.4f}, its record {record.test['accuracy']:.4f}; it is not the recorded model")
    return out

def with_commentary(errors: pd.DataFrame, path) -> pd.DataFrame:
    "`errors` with the sentence a person wrote on each (`path`: a CSV of image_id, commentary), '' where there is none"
    if not Path(path).exists(): return errors.assign(commentary='')
    notes = pd.read_csv(path, keep_default_na=False).set_index('image_id').commentary
    return errors.assign(commentary=[notes.get(i, '') for i in errors.image_id])

def suspect_labels(source, dataset, probe_arch, probe_size, out) -> pd.DataFrame:
    "cleanlab's label issues for every image, from `probe_arch`'s cross-validated probabilities; written to out/label_issues.csv"
    issues = label_issues(source.labels, out_of_sample_probs(probe_features(dataset, probe_arch, probe_size), source.labels))
    ids = source.info.get('ids', np.arange(len(source.labels)).astype(str))
    keep_table(pd.DataFrame(dict(image_id=ids, split=source.split, label=[source.classes[l] for l in source.labels], **issues)),
               Path(out)/'label_issues.csv')
    from .models import get_arch
    issues.attrs['probe'] = f'{get_arch(probe_arch).title} at {probe_size} px, {THRESHOLDS["folds"]}-fold logistic regression'
    return issues

def error_gallery(interp, errors, path, title='', same=same_picture):
    "The errors at full resolution with Grad-CAM of their true and predicted class (the maps computed at the model's input)"
    from . import figures
    src, vocab = interp.source, list(interp.vocab)
    test_i = src.idx('test')[errors.test_pos]
    x = _batch(interp.learn, src.images[test_i])
    maps = {k: class_activation_maps(interp.learn.model, x, [vocab.index(c) for c in errors[k]]) for k in ('true', 'pred')}
    return figures.error_gallery(errors, [_full_resolution(src, i) for i in test_i], path, maps, title=title, same=same)

def probe_features(dataset, arch, size) -> np.ndarray:
    "Pooled features of every image from the pretrained backbone `arch` (cached): the independent embedding"
    from .config import Config
    from .train import build_learner
    from .features import cached_features
    from .models import weights_id
    cfg = Config(dataset=dataset, size=size, arch=arch, strategy='feature-extraction')
    source = load_source(dataset, size)
    return cached_features(arch, weights_id(arch), size, source, lambda: build_learner(cfg, source)[0])[0]
