"The whole study on a dataset that is not ELPV: `--suite all --preset tiny` on a small class-folder dataset, to its own PDF"
import os, re, subprocess, sys
from pathlib import Path
import numpy as np, pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ['circle', 'square', 'cross', 'blank']
ELPV_WORDS = ('solar', 'electroluminescence', 'busbar', 'deitsch', 'elpv')
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}  # tiny models: one thread is faster than two that wait on each other

def shapes_folder(root: Path, n=16, px=40, seed=0) -> Path:
    "A class-folder dataset of PNG shapes on noise, 4 classes of `n` images, made here (no ELPV anywhere)"
    rng = np.random.default_rng(seed)
    for name in CLASSES:
        (root/name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            im = Image.fromarray(rng.integers(0, 80, (px, px), dtype=np.uint8)).convert('RGB')
            d, (x, y), r = ImageDraw.Draw(im), rng.integers(12, px - 12, 2), int(rng.integers(6, 10))
            colour = tuple(int(c) for c in rng.integers(150, 256, 3))
            if name == 'circle': d.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=2)
            elif name == 'square': d.rectangle([x - r, y - r, x + r, y + r], outline=colour, width=2)
            elif name == 'cross': d.line([x - r, y, x + r, y], fill=colour, width=2); d.line([x, y - r, x, y + r], fill=colour, width=2)
            im.save(root/name/f'{name}_{i:02d}.png')
    return root

def background_commands(tmp: Path) -> list:
    "`--suite all --preset tiny` on the shapes in `tmp`, then a rerun of one suite: begun as soon as this module's tests are selected"
    data, results = shapes_folder(tmp/'shapes'), tmp/'study'
    cmd = [sys.executable, 'experiments.py', '--preset', 'tiny', '--dataset', f'folder:{data}', '--results', str(results), '--arch', 'mobilenetv2']
    return [dict(args=cmd + ['--suite', 'all'], cwd=ROOT, env=ENV), dict(args=cmd + ['--suite', 'data-efficiency'], cwd=ROOT, env=ENV)]

@pytest.fixture(scope='module')
def tiny_study(background):
    "The study run once, in the background: (results folder, its output, the rerun)"
    tmp, (study, rerun) = background
    assert study.returncode == 0, study.stdout[-3000:] + study.stderr[-3000:]
    return tmp/'study', study.stdout, rerun

def test_every_suite_runs_and_the_report_is_about_this_dataset(tiny_study):
    from pypdf import PdfReader
    results, log, _ = tiny_study
    pdf = results/'report'/'report.pdf'
    pages = PdfReader(str(pdf)).pages
    text = ' '.join(p.extract_text() for p in pages)
    assert len(pages) <= 10
    assert all(c in text for c in CLASSES)
    assert not [w for w in ELPV_WORDS if w in text.lower()]
    for suite in ('architectures', 'strategies', 'imbalance', 'resolution', 'data-efficiency', 'headline'):
        assert list((results/suite).glob('*.json')), f'{suite} wrote no record'
    assert (results/'analysis'/'errors.csv').exists() and (results/'figures'/'confusion_best.pdf').exists()

def test_a_rerun_of_the_whole_study_trains_nothing(tiny_study):
    out = tiny_study[2]
    assert out.returncode == 0 and re.search(r'suite data-efficiency: \d+ runs, 0 to train', out.stdout), out.stdout[-2000:]
