"Figures from records and tables: training curves, data efficiency, confusion matrices, error galleries"
from __future__ import annotations
import textwrap
from pathlib import Path
import numpy as np
import matplotlib as mpl, matplotlib.pyplot as plt  # the backend is the caller's: scripts pick Agg, notebooks show inline
from .metrics import METRICS, PRIMARY

__all__ = ['save', 'training_curves', 'efficiency_plot', 'confusion', 'error_gallery', 'metric_vs', 'class_examples', 'WIDTH', 'PRINT']

WIDTH = 6.8  # inches: the report's text width (A4, 1.8 cm margins); figures are drawn at the size they print, so 7 pt prints as 7 pt
PRINT = {'font.size': 7.5, 'axes.titlesize': 7.5, 'axes.labelsize': 7.5, 'xtick.labelsize': 7, 'ytick.labelsize': 7,
         'legend.fontsize': 7, 'legend.title_fontsize': 7, 'figure.titlesize': 8.5}  # no text below 7 pt at print size

def save(fig, path, same=None) -> Path:
    """Save `fig` as PNG (for the README and notes) and PDF (for the report), then close it; where `same(old_png, new_png)`
    calls the new drawing a repeat of the saved one, the saved files are kept as they are"""
    from .files import write_unless_same
    def both(png):
        fig.savefig(png, dpi=130, bbox_inches='tight')
        fig.savefig(png.with_suffix('.pdf'), dpi=300, bbox_inches='tight', metadata={'CreationDate': None})  # same figure, same bytes; images kept at 300 dpi of their print size
    try: write_unless_same(Path(path).with_suffix('.png'), both, same or (lambda old, new: False), also=('.pdf',))
    finally: plt.close(fig)
    return Path(path).with_suffix('.png')

def _seed_curve(ax, runs, key, style, **kw):
    "The mean over `runs` of history column `key` per epoch, with a band of one std where there are several seeds"
    import pandas as pd
    d = pd.DataFrame({i: pd.Series({e['epoch']: e[key] for e in r.history}) for i, r in enumerate(runs)})
    mean, std = d.mean(axis=1), d.std(axis=1)
    line, = ax.plot(d.index, mean, style, ms=2.5, lw=1, **kw)
    if d.shape[1] > 1: ax.fill_between(d.index, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
    return line

def restored_early(r) -> bool:
    "Whether run `r` restored an epoch before its last (a monitor such as valid_loss), not simply the final one"
    return r.best_epoch != r.history[-1]['epoch']

F1 = f"valid {METRICS[PRIMARY].label}"  # the training curves' right axis: the primary metric on validation

def _panel(ax, runs, title) -> dict:
    """Train and validation loss (left axis), validation macro-F1 (right axis) of one cell's runs (mean over seeds), stage
    boundaries, and each run's restored epoch where it is not the last; returns the drawn artists by legend label and the twin axis"""
    drawn = {'train loss': _seed_curve(ax, runs, 'train_loss', 'o-'), 'valid loss': _seed_curve(ax, runs, 'valid_loss', 's-')}
    ax2 = ax.twinx()
    drawn[F1] = _seed_curve(ax2, runs, PRIMARY, '^--', color='tab:green')
    ax2.set_ylim(0, 1)
    stages = [e['stage'] for e in runs[0].history]
    for i in range(1, len(stages)):
        if stages[i] != stages[i-1]: drawn['stage boundary'] = ax.axvline(i + 0.5, color='grey', ls=':', lw=1)
    for r in filter(restored_early, runs): drawn['restored epoch'] = ax.axvline(r.best_epoch, color='tab:red', lw=1.2, alpha=0.6/len(runs)**0.5)
    ax.set_title(title); ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    return drawn, ax2

@mpl.rc_context(PRINT)
def training_curves(records, title_of, path, suptitle='', ncols=4, width=WIDTH) -> Path:
    """One panel per cell (the seeds of one configuration), titled by `title_of(record)`: losses (left axis, shared) and
    validation macro-F1 (right axis), mean over the seeds with a band of one std, stage boundaries (dotted) and, where a
    run restored an epoch before its last, that epoch (red). Drawn `width` inches wide, the size it prints"""
    from .records import cell_key
    cells = {}
    for r in records: cells.setdefault(cell_key(r), []).append(r)
    n = len(cells); ncols = min(ncols, n); nrows = int(np.ceil(n/ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 1.55*nrows + 0.3 + 0.25*(n == ncols*nrows)), squeeze=False, sharex=True, sharey=True)
    drawn = {}
    for i, (ax, runs) in enumerate(zip(axes.flat, cells.values())):  # every row labels its loss axis (left) and macro-F1 axis (right)
        d, twin = _panel(ax, runs, title_of(runs[0])); drawn.update(d)
        if i % ncols == 0: ax.set_ylabel('loss')
        if i % ncols == ncols - 1 or i == n - 1: twin.set_ylabel(F1)
        else: twin.tick_params(labelright=False)
        if i + ncols >= n: ax.set_xlabel('epoch'); ax.xaxis.set_tick_params(labelbottom=True)
    for ax in axes.flat[n:]: ax.axis('off')
    keys = [k for k in ('train loss', 'valid loss', F1, 'stage boundary', 'restored epoch') if k in drawn]
    if suptitle: fig.suptitle(suptitle)
    if n < axes.size:  # the legend in the empty panels, else below them
        axes.flat[n].legend([drawn[k] for k in keys], keys, loc='center left', frameon=False); fig.tight_layout(h_pad=0.6, w_pad=0.4)
    else:
        fig.legend([drawn[k] for k in keys], keys, loc='lower center', ncol=len(keys), bbox_to_anchor=(0.5, 0), frameon=False)
        fig.tight_layout(rect=(0, 0.22/fig.get_figheight(), 1, 1), h_pad=0.6, w_pad=0.4)
    return save(fig, path)

@mpl.rc_context(PRINT)
def efficiency_plot(table, path='figures/data_efficiency', title='', baseline=None, width=WIDTH) -> Path:
    """Test accuracy and macro-F1 vs training images (log x): each arm's mean over seeds with error bars of ± one standard
    deviation over the seeds (the legend says so); scratch@100 % (and `baseline`) as lines. Drawn `width` inches wide"""
    fig, axes = plt.subplots(1, len(METRICS), figsize=(width, 3.0), squeeze=False)
    seeds = int(table.seeds.max())
    for ax, (m, name) in zip(axes[0], [(f'test_{k}', f'test {x.label}') for k, x in METRICS.items()]):
        for init, style in (('fine-tuned', 'o-'), ('frozen probe', '^:'), ('scratch', 's--')):
            d = table[table.init == init].sort_values('n_train')
            if d.empty: continue
            ax.errorbar(d.n_train, d[f'{m}_mean'], yerr=d[f'{m}_std'].fillna(0), fmt=style, ms=3.5, lw=1, capsize=2.5, label=init)
        full = table[(table.init == 'scratch') & (table.fraction == 1.0)]
        if not full.empty: ax.axhline(full[f'{m}_mean'].iloc[0], color='grey', ls=':', label='scratch @ 100 %')
        if baseline: ax.axhline(baseline[m], color='tab:red', ls='-.', lw=1, label='majority class')
        ax.set_xscale('log'); ax.set_xlabel('training images (log scale)'); ax.set_ylabel(name); ax.grid(alpha=0.3)
        ax.set_xticks(sorted(table.n_train.unique()), [f'{n:.0f}' for n in sorted(table.n_train.unique())])  # the sizes trained, as numbers
        ax.xaxis.set_minor_formatter(mpl.ticker.NullFormatter())
    bars = 'one seed: no error bars' if seeds == 1 else f'points: mean of {seeds} seeds; error bars: ± 1 standard deviation over the seeds'
    h, l = axes[0, 0].get_legend_handles_labels()
    fig.legend(h, l, title=bars, loc='lower center', ncol=len(l), bbox_to_anchor=(0.5, 0), frameon=False)
    if title: fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.45/fig.get_figheight(), 1, 1), w_pad=1.5)
    return save(fig, path)

@mpl.rc_context(PRINT)
def confusion(test: dict, path, title='', width=3.2) -> Path:
    """Confusion matrix of a record's test metrics, `width` inches wide: each cell its count and, below, its share of the
    true class (row-normalised: recall on the diagonal), shaded by that share"""
    import textwrap
    cm, classes = np.array(test['confusion']), test['classes']
    share = cm/cm.sum(1, keepdims=True).clip(1)
    fig, ax = plt.subplots(figsize=(width, width*0.92))
    ax.imshow(share, cmap='Blues', vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f'{cm[i, j]}\n{share[i, j]:.0%}', ha='center', va='center', fontsize=7, color='white' if share[i, j] > 0.5 else 'black')
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha='right')
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel('predicted'); ax.set_ylabel('true')
    ax.set_title('\n'.join(textwrap.wrap(title, 48)) + ('\n' if title else '') + 'count and share of the true class')
    fig.tight_layout()
    return save(fig, path)

@mpl.rc_context(PRINT)
def error_gallery(errors, images, path, maps=None, title='', per_row=3, width=WIDTH, same=None) -> Path:
    """Misclassified images (`images[i]` for row i, any resolution) grouped by category: the cell, then Grad-CAM of the
    true and the predicted class drawn over it (`maps['true'][i]`, `maps['pred'][i]`, at the model's size); above each
    group its image, category, and true -> predicted class (confidence). `width` inches wide; `same` as in `save`"""
    order = errors.assign(_i=range(len(errors))).sort_values(['category', 'loss'], ascending=[True, False])
    panels = 1 + 2*(maps is not None)
    rows = int(np.ceil(len(order)/per_row))
    head = 0.25 if title else 0  # inches for the title, above the first row's two lines of group titles
    gap = 0.12  # a spacer column between groups, in panel widths
    side = width/(per_row*panels + gap*(per_row - 1))
    ratios = ([1]*panels + [gap])*(per_row - 1) + [1]*panels
    fig, grid = plt.subplots(rows, len(ratios), figsize=(width, (side + 0.42)*rows + head), squeeze=False, gridspec_kw=dict(width_ratios=ratios))
    for ax in grid.flat: ax.axis('off')
    axes = np.delete(grid, [panels + i*(panels + 1) for i in range(per_row - 1)], axis=1)  # the image panels, spacers dropped
    for k, (_, e) in enumerate(order.iterrows()):
        img = images[e['_i']]; h, w = img.shape[:2]
        for j in range(panels):
            ax = axes[k//per_row, (k % per_row)*panels + j]
            ax.imshow(img, cmap='gray', extent=(0, w, h, 0))
            if j: ax.imshow(maps[('true', 'pred')[j - 1]][e['_i']], cmap='jet', alpha=0.45, extent=(0, w, h, 0))
        axes[k//per_row, (k % per_row)*panels + panels//2].set_title(
            f"{e['image_id']}\n{e['category']}\n{e['true']} → {e['pred']} ({e['confidence']:.2f})", linespacing=1.1, pad=2)
    if title: fig.suptitle(title)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1 - (0.42 + head)/fig.get_figheight(), wspace=0.03, hspace=0.42/side)
    return save(fig, path, same)

@mpl.rc_context(PRINT)
def metric_vs(table, x, metrics, path, title='', xlabel=None, right=None, width=4.2) -> Path:
    """Metrics (columns of `table`) against column `x`, one line each, the legend below the axes (it covers no point);
    optionally a cost column in a panel of its own beside them. `width` inches wide"""
    fig, axes = plt.subplots(1, 2 if right else 1, figsize=(width, width*0.62), squeeze=False,
                             gridspec_kw=dict(width_ratios=[2, 1]) if right else None)
    ax = axes[0, 0]
    for m in metrics: ax.plot(table[x], table[m], 'o-', ms=3.5, lw=1, label=m.replace('_mean', '').replace('valid_', 'validation ').replace('_', ' ').replace('macro f1', 'macro-F1'))
    for a in axes.flat: a.set_xlabel(xlabel or x); a.grid(alpha=0.3); a.set_xticks(list(table[x]))
    ax.set_ylabel('score')
    if right: axes[0, 1].plot(table[x], table[right[0]], 'k:', marker='x'); axes[0, 1].set_ylabel(right[1])
    fig.legend(*ax.get_legend_handles_labels(), loc='lower center', ncol=2, bbox_to_anchor=(0.5, 0), frameon=False)
    if title: fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.5/fig.get_figheight(), 1, 1))
    return save(fig, path)

@mpl.rc_context(PRINT)
def class_examples(source, path, per_class=1, width=WIDTH) -> Path:
    "The first training image of each class (and of each cell type where the source has them) at full resolution, `width` inches wide"
    from PIL import Image
    files, types = source.info.get('files'), source.info.get('cell_type')
    kinds = sorted(set(types)) if types is not None else [None]
    panels = [(c, name, kind) for c, name in enumerate(source.classes) for kind in kinds]  # a class's types side by side
    cols = len(panels) if len(panels) <= 8 else len(source.classes)  # one row while the panels stay legible
    rows = -(-len(panels)//cols)
    side = width/cols
    fig, axes = plt.subplots(rows, cols, figsize=(width, (side + 0.35)*rows), squeeze=False)
    train = source.idx('train')
    for ax in axes.flat: ax.axis('off')
    for ax, (c, name, kind) in zip(axes.flat if cols == len(panels) else axes.T.flat, panels):
        pick = [i for i in train if source.labels[i] == c and (kind is None or types[i] == kind)]
        if not pick: continue
        img = np.asarray(Image.open(files[pick[0]])) if files is not None else source.images[pick[0]]
        ax.imshow(img, cmap='gray'); ax.set_title(textwrap.fill(name, 12) + (f"\n{kind}" if kind else ''), pad=2)  # long names break at hyphens
    fig.tight_layout(pad=0.3)
    return save(fig, path)
