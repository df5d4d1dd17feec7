import os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
INLINE = 'module://matplotlib_inline.backend_inline'  # what a Jupyter kernel sets; resolvable without a display

def test_importing_ftl_leaves_the_matplotlib_backend_alone():
    "A library never calls `matplotlib.use`: the notebook's inline backend (or a script's choice) survives `import ftl`"
    code = 'import matplotlib; before = matplotlib.get_backend(); import ftl; print(before, matplotlib.get_backend())'
    env = {**os.environ, 'MPLBACKEND': INLINE}
    out = subprocess.run([sys.executable, '-c', code], env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert out == [INLINE, INLINE], out

def test_figure_savers_write_png_and_pdf_and_close_their_figure(tmp_path):
    import matplotlib.pyplot as plt
    from ftl import figures
    before = set(plt.get_fignums())
    test = dict(confusion=[[3, 1], [0, 4]], classes=['a', 'b'])
    png = figures.confusion(test, tmp_path/'cm', 'title')
    assert png.stat().st_size > 0 and png.with_suffix('.pdf').stat().st_size > 0 and set(plt.get_fignums()) == before

def kernel_in_this_env(tmp_path, monkeypatch) -> str:
    "A kernelspec for this interpreter (found first through JUPYTER_PATH), as a fresh CI machine has no kernel installed"
    from ipykernel.kernelspec import install
    monkeypatch.setenv('JUPYTER_PATH', str(tmp_path/'jupyter'/'share'/'jupyter'))
    install(kernel_name='ftl-test', prefix=str(tmp_path/'jupyter'))
    monkeypatch.delenv('MPLBACKEND', raising=False)  # the kernel's own default (inline), nothing forced
    return 'ftl-test'

def test_the_example_notebook_runs_headless_and_shows_its_plots(tmp_path, monkeypatch):
    "notebooks/inspect.ipynb trains, interprets and plots in a kernel: top losses, confusion matrix and Grad-CAM come out as images"
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(ROOT/'notebooks'/'inspect.ipynb', as_version=4)
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])))  # this checkout's ftl
    NotebookClient(nb, timeout=300, kernel_name=kernel_in_this_env(tmp_path, monkeypatch),
                   resources={'metadata': {'path': str(tmp_path)}}).execute()  # FTL_CACHE: the session's, inherited
    for call in ('plot_top_losses', 'plot_confusion_matrix', 'plot_gradcam'):
        cell = next(c for c in nb.cells if c.cell_type == 'code' and call in c.source)
        assert any('image/png' in o.get('data', {}) for o in cell.outputs), (call, cell.outputs)
