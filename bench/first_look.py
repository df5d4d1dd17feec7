"""How long a first look at a new dataset takes: `--suite all --preset tiny` on 500 gray 28 x 28 images of 10 classes in
train/valid/test folders (350 / 75 / 75), with no environment variable set, in a fresh results folder and cache.

    python bench/first_look.py [--keep DIR]

Prints the wall time of the whole command and of each suite (from the time each suite's first line appeared), and writes
them to results/benchmark/first_look.txt. The machine should be otherwise idle (the 2-core machine: nothing else running)."""
import os, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]

def product_folder(root: Path, n=50, px=28, classes=10, seed=0) -> Path:
    "`n` gray `px`-pixel images per class (a shape per class, jittered, on noise), split 35 / 7.5 / 7.5 into train/valid/test"
    rng = np.random.default_rng(seed)
    for c in range(classes):
        for i in range(n):
            part = 'train' if i < 0.7*n else 'valid' if i < 0.85*n else 'test'
            im = Image.fromarray(rng.integers(0, 70, (px, px), dtype=np.uint8))
            d, (x, y), r = ImageDraw.Draw(im), rng.integers(9, px - 9, 2), int(rng.integers(5, 8))
            angle = np.pi*c/classes
            d.line([x - r*np.cos(angle), y - r*np.sin(angle), x + r*np.cos(angle), y + r*np.sin(angle)], fill=int(rng.integers(170, 256)), width=2)
            if c % 2: d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=255)
            (root/part/f'kind{c}').mkdir(parents=True, exist_ok=True)
            im.save(root/part/f'kind{c}'/f'{i:03d}.png')
    return root

def main():
    keep = sys.argv[sys.argv.index('--keep') + 1] if '--keep' in sys.argv else None
    tmp = Path(keep or tempfile.mkdtemp(prefix='first-look-'))
    data = product_folder(tmp/'products')
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')}
    env['FTL_CACHE'] = str(tmp/'cache')  # a fresh cache: weights converted and data decoded as on a new machine
    cmd = [sys.executable, 'experiments.py', '--suite', 'all', '--preset', 'tiny', '--dataset', f'folder:{data}', '--results', str(tmp/'study')]
    start, marks = time.time(), []
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        for line in p.stdout:
            if line.startswith('suite ') or line.startswith('== '): marks.append((time.time() - start, line.split(':')[0]))
    total = time.time() - start
    lines = [f"first look: {' '.join(cmd[1:])}", f"exit {p.returncode}, {total:.0f} s ({total/60:.1f} min) in all, on {os.cpu_count()} cores"]
    lines += [f"  from {t:6.0f} s  {what}" for t, what in marks]
    print('\n'.join(lines))
    if p.returncode == 0:
        out = ROOT/'results'/'benchmark'/'first_look.txt'; out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text('\n'.join(lines) + '\n')
    sys.exit(p.returncode)

if __name__ == '__main__': main()
