import pytest
import numpy as np, pandas as pd
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt
from pathlib import Path
from ftl import figures
from ftl.metrics import METRICS, PRIMARY
from ftl.records import read_records

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture
def drawn(monkeypatch):
    "Figures as drawn, not saved: each figure function returns its figure"
    monkeypatch.setattr(figures, 'save', lambda fig, path: fig)
    yield
    plt.close('all')

def texts(fig) -> list:
    "Every visible, non-empty text of `fig` once drawn (titles, labels, tick labels, legends, annotations)"
    fig.canvas.draw()
    return [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]

def assert_prints_at_7pt(fig):
    "Drawn no wider than the report's text, so placed at its own size: every text prints at its font size, at least 7 pt"
    assert fig.get_figwidth() <= figures.WIDTH + 1e-9
    small = [(t.get_text(), t.get_fontsize()) for t in texts(fig) if t.get_fontsize() < 7]
    assert not small, small

def red_lines(fig) -> int:
    return sum(1 for ax in fig.axes for l in ax.lines if l.get_color() == 'tab:red')

def legend_labels(fig) -> list: return [t.get_text() for lg in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()] for t in lg.get_texts()]

def test_training_curves_mark_a_restored_epoch_only_where_it_is_not_the_last_and_label_every_axis(drawn):
    recs = read_records(ROOT/'results'/'strategies')
    selected = [r for r in recs if r.config['monitor'] == 'valid_loss']  # the quick runs: some restored an earlier epoch, some their last
    early = [r for r in selected if figures.restored_early(r)]
    assert 0 < len(early) < len(selected)
    fig = figures.training_curves(selected, lambda r: r.config['strategy'], 'unused', ncols=4)
    assert red_lines(fig) == len(early) and 'restored epoch' in legend_labels(fig)
    for ax in fig.axes:  # every axis that shows tick labels, the twin (right) axes included, names what it shows
        if ax.axison and any(t.get_text() for t in ax.get_yticklabels()): assert ax.get_ylabel(), ax.get_title()
    assert {ax.get_ylabel() for ax in fig.axes} >= {'loss', f'valid {METRICS[PRIMARY].label}'}
    assert_prints_at_7pt(fig)
    last = [r for r in recs if r.config['monitor'] == 'last']  # the study's runs keep their final epoch: no marker, no legend entry
    fig = figures.training_curves(last, lambda r: r.config['strategy'], 'unused')
    assert red_lines(fig) == 0 and 'restored epoch' not in legend_labels(fig)

def test_the_efficiency_plot_says_what_its_error_bars_are_and_prints_at_7pt(drawn):
    rows = [dict(init=i, fraction=f, n_train=int(1000*f), seeds=3, **{f'test_{m}_{s}': v for m in METRICS for s, v in (('mean', 0.5 + f/4), ('std', 0.02))})
            for i in ('fine-tuned', 'frozen probe', 'scratch') for f in (0.1, 0.5, 1.0)]
    fig = figures.efficiency_plot(pd.DataFrame(rows), 'unused', baseline={f'test_{m}': 0.2 for m in METRICS})
    title = fig.legends[0].get_title().get_text()
    assert 'mean of 3 seeds' in title and '± 1 standard deviation over the seeds' in title
    caps = [l for ax in fig.axes for c in ax.containers for l in c.lines[2]]  # the drawn bars span mean ± std
    assert np.allclose(caps[0].get_segments()[0][:, 1], [0.525 - 0.02, 0.525 + 0.02])
    assert_prints_at_7pt(fig)

def test_the_confusion_matrix_shows_counts_and_row_shares_at_7pt(drawn):
    test = dict(confusion=[[8, 2], [1, 9]], classes=['no defect', 'defect'])
    fig = figures.confusion(test, 'unused', 'a model')
    cells = [t.get_text() for t in fig.axes[0].texts]
    assert cells == ['8\n80%', '2\n20%', '1\n10%', '9\n90%']
    assert_prints_at_7pt(fig)
