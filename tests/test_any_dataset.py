"The whole study on a dataset that is not ELPV: `--suite all --preset tiny` on a small class-folder dataset, to its own PDF"
import re, subprocess, sys
from pathlib import Path
import numpy as np, pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ['circle', 'square', 'cross', 'blank']
ELPV_WORDS = ('solar', 'electroluminescence', 'busbar', 'deitsch', 'elpv')

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

@pytest.fixture(scope='module')
def tiny_study(tmp_path_factory):
    "`--suite all --preset tiny` on the shapes, run once: (results folder, the command's output)"
    data, results = shapes_folder(tmp_path_factory.mktemp('shapes')), tmp_path_factory.mktemp('study')
    out = subprocess.run([sys.executable, 'experiments.py', '--suite', 'all', '--preset', 'tiny', '--dataset', f'folder:{data}',
                          '--results', str(results), '--arch', 'mobilenetv2'], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return results, out.stdout

def test_every_suite_runs_and_the_report_is_about_this_dataset(tiny_study):
    from pypdf import PdfReader
    results, log = tiny_study
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
    results, _ = tiny_study
    data = next(p for p in results.parent.iterdir() if p.name.startswith('shapes'))
    out = subprocess.run([sys.executable, 'experiments.py', '--suite', 'data-efficiency', '--preset', 'tiny', '--dataset',
                          f'folder:{data}', '--results', str(results), '--arch', 'mobilenetv2'], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and re.search(r'suite data-efficiency: \d+ runs, 0 to train', out.stdout), out.stdout[-2000:]
