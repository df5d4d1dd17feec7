import os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
INLINE = 'module://matplotlib_inline.backend_inline'  # what a Jupyter kernel sets; resolvable without a display

BACKEND = 'import matplotlib; before = matplotlib.get_backend(); import ftl; print(before, matplotlib.get_backend())'
NOTEBOOK = """
import sys, nbformat
from nbclient import NotebookClient
from ipykernel.kernelspec import install
src, out = sys.argv[1:]
install(kernel_name='ftl-test', prefix=f'{out}/jupyter')  # found first through JUPYTER_PATH: a fresh CI machine has no kernel
nb = nbformat.read(src, as_version=4)
NotebookClient(nb, timeout=300, kernel_name='ftl-test', resources={'metadata': {'path': out}}).execute()
nbformat.write(nb, f'{out}/executed.ipynb')
"""

def background_commands(tmp):
    "Begun as soon as this module's tests are selected: `import ftl` under the inline backend; the notebook run headless"
    env = {k: v for k, v in os.environ.items() if k != 'MPLBACKEND'}  # the kernel's own default (inline), nothing forced
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))  # this checkout's ftl
    return [dict(args=[sys.executable, '-c', BACKEND], env={**os.environ, 'MPLBACKEND': INLINE}, cwd=ROOT),
            dict(args=[sys.executable, '-c', NOTEBOOK, str(ROOT/'notebooks'/'inspect.ipynb'), str(tmp)], cwd=ROOT,
                 env={**env, 'PYTHONPATH': path, 'JUPYTER_PATH': str(tmp/'jupyter'/'share'/'jupyter')})]

def test_importing_ftl_leaves_the_matplotlib_backend_alone(background):
    "A library never calls `matplotlib.use`: the notebook's inline backend (or a script's choice) survives `import ftl`"
    p = background[1][0]
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout.split()
    assert out == [INLINE, INLINE], out

def test_figure_savers_write_png_and_pdf_and_close_their_figure(tmp_path):
    import matplotlib.pyplot as plt
    from ftl import figures
    before = set(plt.get_fignums())
    test = dict(confusion=[[3, 1], [0, 4]], classes=['a', 'b'])
    png = figures.confusion(test, tmp_path/'cm', 'title')
    assert png.stat().st_size > 0 and png.with_suffix('.pdf').stat().st_size > 0 and set(plt.get_fignums()) == before

def test_the_example_notebook_runs_headless_and_shows_its_plots(background):
    "notebooks/inspect.ipynb trains, interprets and plots in a kernel: top losses, confusion matrix and Grad-CAM come out as images"
    import nbformat
    tmp, (_, run) = background
    assert run.returncode == 0, run.stderr[-3000:]
    nb = nbformat.read(tmp/'executed.ipynb', as_version=4)
    for call in ('plot_top_losses', 'plot_confusion_matrix', 'plot_gradcam'):
        cell = next(c for c in nb.cells if c.cell_type == 'code' and call in c.source)
        assert any('image/png' in o.get('data', {}) for o in cell.outputs), (call, cell.outputs)
