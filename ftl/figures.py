"Figures from records and tables: training curves, data efficiency, confusion matrices, error galleries"
from __future__ import annotations
from pathlib import Path
import numpy as np
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt

__all__ = ['save', 'training_curves', 'efficiency_plot', 'confusion', 'error_gallery', 'metric_vs']

def save(fig, path) -> Path:
    "Save `fig` as PNG (for the README and notes) and PDF (for the report), then close it"
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path.with_suffix('.png'), dpi=130, bbox_inches='tight'); fig.savefig(path.with_suffix('.pdf'), bbox_inches='tight')
    plt.close(fig)
    return path.with_suffix('.png')

def _panel(ax, r, title):
    "Train and validation loss, validation accuracy (right axis), best epoch and stage boundaries of one run"
    h = r.history
    ep = [e['epoch'] for e in h]
    ax.plot(ep, [e['train_loss'] for e in h], 'o-', ms=3, label='train loss')
    ax.plot(ep, [e['valid_loss'] for e in h], 's-', ms=3, label='valid loss')
    ax2 = ax.twinx()
    ax2.plot(ep, [e['accuracy'] for e in h], '^--', ms=3, color='tab:green', label='valid acc')
    ax2.set_ylim(0, 1); ax2.tick_params(labelsize=7)
    stages = [e['stage'] for e in h]
    for i in range(1, len(stages)):
        if stages[i] != stages[i-1]: ax.axvline(i + 0.5, color='grey', ls=':', lw=1)
    ax.axvline(r.best_epoch, color='tab:red', lw=1.5, alpha=0.6)
    ax.set_title(title, fontsize=8); ax.tick_params(labelsize=7); ax.set_xlabel('epoch', fontsize=7)
    return ax2

def training_curves(records, title_of, path, suptitle='', ncols=4) -> Path:
    "One panel per run (titled by `title_of(record)`): losses, validation accuracy, best epoch (red), stages (dotted)"
    n = len(records); nrows = int(np.ceil(n/ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.1*ncols, 2.4*nrows), squeeze=False)
    for ax, r in zip(axes.flat, records): ax2 = _panel(ax, r, title_of(r))
    for ax in axes.flat[n:]: ax.axis('off')
    h1, l1 = axes.flat[0].get_legend_handles_labels(); h2, l2 = ax2.get_legend_handles_labels()
    fig.legend(h1 + h2 + [plt.Line2D([], [], color='tab:red'), plt.Line2D([], [], color='grey', ls=':')],
               l1 + l2 + ['best epoch (restored)', 'stage boundary'], loc='lower center', ncol=5, fontsize=8,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(suptitle, fontsize=10); fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return save(fig, path)

def efficiency_plot(table, path='figures/data_efficiency', title='', baseline=None) -> Path:
    "Test accuracy and macro-F1 vs training images (log x), both inits with std error bars; scratch@100 % (and `baseline`) as lines"
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, (m, name) in zip(axes, [('test_accuracy', 'test accuracy'), ('test_macro_f1', 'test macro-F1')]):
        for init, style in (('pretrained', 'o-'), ('scratch', 's--')):
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

def error_gallery(errors, images, path, ncols=6, title='') -> Path:
    "Misclassified test images (`images[i]` for row i) grouped by failure category, titled true / predicted / probability"
    errors = errors.assign(_image=list(images)).sort_values(['category', 'loss'], ascending=[True, False])
    cats = list(dict.fromkeys(errors.category))
    rows = sum(int(np.ceil((errors.category == c).sum()/ncols)) for c in cats)
    fig, axes = plt.subplots(rows, ncols, figsize=(1.9*ncols, 2.25*rows), squeeze=False)
    r = 0
    for c in cats:
        sub = errors[errors.category == c]
        n_rows = int(np.ceil(len(sub)/ncols))
        for k in range(n_rows*ncols):
            ax = axes[r + k//ncols, k % ncols]; ax.axis('off')
            if k < len(sub):
                e = sub.iloc[k]
                ax.imshow(e['_image'], cmap='gray')
                ax.set_title(f"{e['image_id']}\ntrue {e['true']}\npred {e['pred']} ({e['confidence']:.2f})", fontsize=6)
        axes[r, 0].text(-0.15, 0.5, c, transform=axes[r, 0].transAxes, rotation=90, va='center', ha='right', fontsize=8,
                        fontweight='bold')
        r += n_rows
    fig.suptitle(title, fontsize=10); fig.tight_layout(rect=(0, 0, 1, 1 - 0.35/fig.get_figheight()))
    return save(fig, path)

def metric_vs(table, x, metrics, path, title='', xlabel=None, right=None) -> Path:
    "Metrics (columns of `table`) against column `x`, one line each; optionally a cost column on a right axis"
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for m in metrics: ax.plot(table[x], table[m], 'o-', label=m.replace('_mean', '').replace('_', ' '))
    ax.set_xlabel(xlabel or x); ax.set_ylabel('score'); ax.grid(alpha=0.3); ax.set_xticks(list(table[x]))
    if right:
        ax2 = ax.twinx(); ax2.plot(table[x], table[right[0]], 'k:', marker='x', label=right[1]); ax2.set_ylabel(right[1])
        ax2.legend(loc='lower right', fontsize=8)
    ax.legend(loc='upper left', fontsize=8); ax.set_title(title, fontsize=9); fig.tight_layout()
    return save(fig, path)
