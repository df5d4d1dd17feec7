"Figures from records and tables: training curves, data efficiency, confusion matrices, error galleries"
from __future__ import annotations
from pathlib import Path
import numpy as np
import matplotlib.pyplot as plt  # the backend is the caller's: scripts pick Agg, notebooks show inline
from .metrics import METRICS

__all__ = ['save', 'training_curves', 'efficiency_plot', 'confusion', 'error_gallery', 'metric_vs']

def save(fig, path) -> Path:
    "Save `fig` as PNG (for the README and notes) and PDF (for the report), then close it"
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path.with_suffix('.png'), dpi=130, bbox_inches='tight'); fig.savefig(path.with_suffix('.pdf'), bbox_inches='tight', metadata={'CreationDate': None})  # same figure, same bytes
    plt.close(fig)
    return path.with_suffix('.png')

def _seed_curve(ax, runs, key, style, **kw):
    "The mean over `runs` of history column `key` per epoch, with a band of one std where there are several seeds"
    import pandas as pd
    d = pd.DataFrame({i: pd.Series({e['epoch']: e[key] for e in r.history}) for i, r in enumerate(runs)})
    mean, std = d.mean(axis=1), d.std(axis=1)
    line, = ax.plot(d.index, mean, style, ms=3, **kw)
    if d.shape[1] > 1: ax.fill_between(d.index, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)

def _panel(ax, runs, title):
    "Train and validation loss, validation macro-F1 (right axis) of one cell's runs (mean over seeds), restored epoch, stages"
    _seed_curve(ax, runs, 'train_loss', 'o-', label='train loss')
    _seed_curve(ax, runs, 'valid_loss', 's-', label='valid loss')
    ax2 = ax.twinx()
    _seed_curve(ax2, runs, 'macro_f1', '^--', color='tab:green', label='valid macro-F1')
    ax2.set_ylim(0, 1); ax2.tick_params(labelsize=7)
    stages = [e['stage'] for e in runs[0].history]
    for i in range(1, len(stages)):
        if stages[i] != stages[i-1]: ax.axvline(i + 0.5, color='grey', ls=':', lw=1)
    for r in runs: ax.axvline(r.best_epoch, color='tab:red', lw=1.5, alpha=0.6/len(runs)**0.5)
    ax.set_title(title, fontsize=8); ax.tick_params(labelsize=7); ax.set_xlabel('epoch', fontsize=7)
    return ax2

def training_curves(records, title_of, path, suptitle='', ncols=4) -> Path:
    """One panel per cell (the seeds of one configuration), titled by `title_of(record)`: losses and validation macro-F1,
    mean over the seeds with a band of one std, restored epochs (red), stage boundaries (dotted)"""
    from .records import cell_key
    cells = {}
    for r in records: cells.setdefault(cell_key(r), []).append(r)
    n = len(cells); nrows = int(np.ceil(n/ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.1*ncols, 2.4*nrows), squeeze=False)
    for ax, runs in zip(axes.flat, cells.values()):
        ax2 = _panel(ax, runs, title_of(runs[0]) + (f' ({len(runs)} seeds)' if len(runs) > 1 else ''))
    for ax in axes.flat[n:]: ax.axis('off')
    h1, l1 = axes.flat[0].get_legend_handles_labels(); h2, l2 = ax2.get_legend_handles_labels()
    fig.legend(h1 + h2 + [plt.Line2D([], [], color='tab:red'), plt.Line2D([], [], color='grey', ls=':')],
               l1 + l2 + ['restored epoch', 'stage boundary'], loc='lower center', ncol=5, fontsize=8,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(suptitle, fontsize=10); fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return save(fig, path)

def efficiency_plot(table, path='figures/data_efficiency', title='', baseline=None) -> Path:
    "Test accuracy and macro-F1 vs training images (log x), each arm with std error bars; scratch@100 % (and `baseline`) as lines"
    fig, axes = plt.subplots(1, len(METRICS), figsize=(5*len(METRICS), 3.8), squeeze=False)
    for ax, (m, name) in zip(axes[0], [(f'test_{k}', f'test {x.label}') for k, x in METRICS.items()]):
        for init, style in (('fine-tuned', 'o-'), ('frozen probe', '^:'), ('scratch', 's--')):
            d = table[table.init == init].sort_values('n_train')
            if d.empty: continue
            ax.errorbar(d.n_train, d[f'{m}_mean'], yerr=d[f'{m}_std'].fillna(0), fmt=style, capsize=3, label=init)
        full = table[(table.init == 'scratch') & (table.fraction == 1.0)]
        if not full.empty: ax.axhline(full[f'{m}_mean'].iloc[0], color='grey', ls=':', label='scratch @ 100 %')
        if baseline: ax.axhline(baseline[m], color='tab:red', ls='-.', lw=1, label='majority class')
        ax.set_xscale('log'); ax.set_xlabel('training images (log scale)'); ax.set_ylabel(name); ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10); fig.tight_layout()
    return save(fig, path)

def confusion(test: dict, path, title='') -> Path:
    "Confusion matrix of a record's test metrics: counts and row-normalised (recall on the diagonal)"
    cm, classes = np.array(test['confusion']), test['classes']
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, (mat, fmt, name) in zip(axes, [(cm, 'd', 'counts'), (cm/cm.sum(1, keepdims=True).clip(1), '.2f', 'row-normalised')]):
        ax.imshow(mat, cmap='Blues')
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, format(mat[i, j], fmt), ha='center', va='center', fontsize=8,
                        color='white' if mat[i, j] > mat.max()/2 else 'black')
        ax.set_xticks(range(len(classes)), classes, rotation=35, ha='right', fontsize=8)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        ax.set_xlabel('predicted'); ax.set_ylabel('true'); ax.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=10); fig.tight_layout()
    return save(fig, path)

PAGE_WIDTH_IN = 6.85  # the report's text width (A4 less its margins): a figure this wide prints its fonts at their size

def error_gallery(errors, images, path, maps=None, title='', per_row=3) -> Path:
    """Misclassified images (`images[i]` for row i, any resolution) grouped by category: the cell, then Grad-CAM of the
    true and the predicted class drawn over it (`maps['true'][i]`, `maps['pred'][i]`, at the model's size); page-wide, 7 pt"""
    order = errors.assign(_i=range(len(errors))).sort_values(['category', 'loss'], ascending=[True, False], kind='stable')
    panels = 1 + 2*(maps is not None)
    rows, side = int(np.ceil(len(order)/per_row)), PAGE_WIDTH_IN/(per_row*panels)
    fig, axes = plt.subplots(rows, per_row*panels, figsize=(PAGE_WIDTH_IN, rows*(side + 0.32) + 0.25), squeeze=False)
    for ax in axes.flat: ax.axis('off')
    for k, (_, e) in enumerate(order.iterrows()):
        img = images[e['_i']]; h, w = img.shape[:2]
        for j in range(panels):
            ax = axes[k//per_row, (k % per_row)*panels + j]
            ax.imshow(img, cmap='gray', extent=(0, w, h, 0))
            if j: ax.imshow(maps[('true', 'pred')[j - 1]][e['_i']], cmap='jet', alpha=0.45, extent=(0, w, h, 0))
            ax.set_title([f"{e['image_id']}\n{e.get('tag', e['category'])}", f"true\n{e['true']}",
                          f"predicted ({e['confidence']:.2f})\n{e['pred']}"][j], fontsize=7, pad=2)
    fig.suptitle(title, fontsize=8); fig.tight_layout(pad=0.2, h_pad=0.3, w_pad=0.1, rect=(0, 0, 1, 1 - 0.25/fig.get_figheight()))
    return save(fig, path)

def metric_vs(table, x, metrics, path, title='', xlabel=None, right=None) -> Path:
    "Metrics (columns of `table`) against column `x`, one line each; optionally a cost column on a right axis"
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for m in metrics: ax.plot(table[x], table[m], 'o-', label=m.replace('_mean', '').replace('valid_', 'validation ').replace('_', ' ').replace('macro f1', 'macro-F1'))
    ax.set_xlabel(xlabel or x); ax.set_ylabel('score'); ax.grid(alpha=0.3); ax.set_xticks(list(table[x]))
    if right:
        ax2 = ax.twinx(); ax2.plot(table[x], table[right[0]], 'k:', marker='x', label=right[1]); ax2.set_ylabel(right[1])
        ax2.legend(loc='lower right', fontsize=8)
    ax.legend(loc='upper left', fontsize=8); ax.set_title(title, fontsize=9); fig.tight_layout()
    return save(fig, path)

def class_examples(source, path, per_class=1) -> Path:
    "The first training image of each class (and of each cell type where the source has them) at full resolution"
    from PIL import Image
    files, types = source.info.get('files'), source.info.get('cell_type')
    kinds = sorted(set(types)) if types is not None else [None]
    fig, axes = plt.subplots(len(kinds), len(source.classes), figsize=(2.1*len(source.classes), 2.25*len(kinds)), squeeze=False)
    train = source.idx('train')
    for r, kind in enumerate(kinds):
        for c, name in enumerate(source.classes):
            ax = axes[r, c]; ax.axis('off')
            pick = [i for i in train if source.labels[i] == c and (kind is None or types[i] == kind)]
            if not pick: continue
            img = np.asarray(Image.open(files[pick[0]])) if files is not None else source.images[pick[0]]
            ax.imshow(img, cmap='gray'); ax.set_title(f"{name}" + (f" ({kind})" if kind else ''), fontsize=8)
    fig.tight_layout()
    return save(fig, path)
