"""Memory and time of ftl's decoded-image store: folders of 1k / 10k / 100k small PNGs loaded at 224 px, first load and cached,
reopen of an unchanged folder, the old in-memory loader beside it, and training steps from an in-RAM array vs the memmap"""
import json, os, resource, shutil, subprocess, sys, tempfile, time
from pathlib import Path

HERE, MAIN = Path(__file__).resolve().parents[1], os.environ.get('FTL_OLD')  # FTL_OLD: a checkout of the in-memory loader, to compare

def peak_mb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024

def child(what, *args):
    "One measurement in this (fresh) process: prints seconds and peak RSS as JSON"
    import numpy as np, torch, fastai.vision.all, ftl, ftl.data  # the libraries every ftl run imports anyway
    t = time.perf_counter()
    if what == 'load':
        src = ftl.data.load_source(f'folder:{args[0]}', int(args[1]))
        out = dict(n=len(src.labels), shape=list(src.images.shape), memmap=isinstance(src.images, np.memmap))
    elif what == 'ident': out = dict(ident=ftl.data.dataset_id(f'folder:{args[0]}'))
    elif what == 'train': out = train_steps(*args)
    else: out = {}
    print(json.dumps(dict(seconds=time.perf_counter() - t, peak_mb=peak_mb(), **out)))

def measure(what, *args, old=False, cache=None):
    "Run `child(what, *args)` in a fresh interpreter (the old loader's checkout first on the path when `old`)"
    env = dict(os.environ, PYTHONPATH=MAIN if old else str(HERE), FTL_CACHE=str(cache or os.environ['FTL_CACHE']))
    r = subprocess.run([sys.executable, __file__, 'child', what, *map(str, args)], env=env, capture_output=True, text=True)
    if r.returncode: raise RuntimeError(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])

def write_pngs(root: Path, n: int, px=48):
    "`n` small gray PNGs in four class folders (noise plus a line, about 4 kB each)"
    import numpy as np
    from PIL import Image
    rng, t = np.random.default_rng(0), time.perf_counter()
    base = rng.integers(0, 255, (64, px, px), dtype=np.uint8)
    for c in range(4): (root/f'c{c}').mkdir(parents=True, exist_ok=True)
    for i in range(n):
        a = base[i % 64].copy(); a[i % px] = i % 251
        Image.fromarray(a).save(root/f'c{i % 4}'/f'{i:06d}.png')
    return time.perf_counter() - t

def train_steps(folder, size, batches, reps):
    "Seconds per training step (MobileNetV2, batch 32) with the source's images as a memmap vs the same pixels as an in-RAM array"
    import numpy as np, torch
    from dataclasses import replace
    from ftl.data import load_source
    from ftl.train import Config, build_learner
    size = int(size)
    mm = load_source(f'folder:{folder}', size)
    ram = replace(mm, images=np.array(mm.images))  # what `Source.images` was before the store
    cfg = Config(dataset=f'folder:{folder}', size=size, arch='mobilenetv2', pretrained=False, bs=32)
    learners = {k: build_learner(cfg, s)[0] for k, s in (('ram', ram), ('memmap', mm))}
    its = {k: iter(l.dls.train) for k, l in learners.items()}
    opts = {k: torch.optim.Adam(l.model.parameters(), 1e-3) for k, l in learners.items()}
    def batch(k):
        try: return next(its[k])
        except StopIteration: its[k] = iter(learners[k].dls.train); return next(its[k])
    def step(k):
        t = time.perf_counter(); xb, yb = batch(k); d = time.perf_counter() - t
        learn = learners[k]; learn.model.train()
        loss = learn.loss_func(learn.model(xb.as_subclass(torch.Tensor)), yb); loss.backward(); opts[k].step(); opts[k].zero_grad()
        return time.perf_counter() - t, d
    for k in learners: step(k); step(k)  # warm-up
    steps, data = {k: [] for k in learners}, {k: [] for k in learners}
    for i in range(int(batches)*int(reps)):  # arms alternate batch by batch (order flipped each time): the machine's drift hits both alike
        for k in (('ram', 'memmap') if i % 2 else ('memmap', 'ram')):
            s, d = step(k); steps[k].append(s); data[k].append(d)
    stat = lambda v, f: {k: float(f(x)) for k, x in v.items()}
    return dict(step_s=stat(steps, np.median), data_s=stat(data, np.median), step_min=stat(steps, np.min), data_min=stat(data, np.min),
                threads=torch.get_num_threads(), batches=int(batches)*int(reps))

def main(ns, size=224, work=None):
    work = Path(work or tempfile.mkdtemp(prefix='ftl-data-bench-', dir=os.environ.get('BENCH_DIR', '/tmp')))
    lines = [f"# bench/data_store.py on {os.uname().nodename}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
             f"# peak RSS: ru_maxrss of a fresh interpreter, minus that of one that only imports the libraries (numpy, torch, fastai, ftl)",
             f"# load average at start (other users of the machine): {os.getloadavg()[0]:.1f}"]
    say = lambda s: (print(s, flush=True), lines.append(s))
    base = min(measure('none', cache=work/'cache')['peak_mb'] for _ in range(3))
    say(f"baseline (imports only): {base:.0f} MB")
    say(f"{'images':>7} | {'loader':<26} | {'load s':>7} | {'peak RSS beyond imports MB':>27} | store")
    try:
        for n in ns:
            folder, cache = work/f'f{n}', work/f'cache{n}'
            say(f"# {n} PNGs written in {write_pngs(folder, n):.0f} s ({sum(f.stat().st_size for f in folder.rglob('*.png'))/2**20:.0f} MB)")
            for label in ('first load', 'cached (reopen)'):
                r = measure('load', folder, size, cache=cache)
                say(f"{n:>7} | {'store, ' + label:<26} | {r['seconds']:7.1f} | {r['peak_mb'] - base:27.0f} | memmap={r['memmap']} {r['shape']}")
            r = measure('ident', folder, cache=cache)
            say(f"{n:>7} | {'dataset_id (full hash)':<26} | {r['seconds']:7.1f} | {r['peak_mb'] - base:27.0f} |")
            if MAIN and n <= 10_000:  # the in-memory loader: a 100k x 224 x 224 stack would need twice 5 GB
                for label in ('first load', 'cached'):
                    r = measure('load', folder, size, old=True, cache=work/f'old{n}')
                    say(f"{n:>7} | {'old in-memory, ' + label:<26} | {r['seconds']:7.1f} | {r['peak_mb'] - base:27.0f} | memmap={r['memmap']}")
            store = sum(p.stat().st_size for p in cache.rglob('*') if p.is_file())/2**30
            say(f"{n:>7} | store on disk: {store:.2f} GB; load average now {os.getloadavg()[0]:.1f}")
            shutil.rmtree(cache, ignore_errors=True); shutil.rmtree(work/f'old{n}', ignore_errors=True)
            if n != ns[0]: shutil.rmtree(folder, ignore_errors=True)
        folder = work/f'f{ns[0]}'
        r = measure('train', folder, 128, 15, 2, cache=work/'cache-train')
        say(f"# training steps: MobileNetV2 (from scratch) at 128 px, batch 32, {r['threads']} threads, {r['batches']} steps per arm, "
            f"arms alternating step by step, folder of {ns[0]} images; load average now {os.getloadavg()[0]:.1f}")
        for what, key in (('step s, median', 'step_s'), ('step s, fastest (least disturbed)', 'step_min'),
                          ('of which fetching the batch, median', 'data_s'), ('of which fetching the batch, fastest', 'data_min')):
            ram, mm = r[key]['ram'], r[key]['memmap']
            say(f"{what}: in-RAM array {ram:.4f}, memmap store {mm:.4f}: memmap/RAM = {mm/ram:.3f}")
    finally: shutil.rmtree(work, ignore_errors=True)
    out = Path(os.environ.get('BENCH_OUT', HERE/'results'/'benchmark'/'data_store_cpu.txt'))
    out.write_text('\n'.join(lines) + '\n')
    print('wrote', out)

if __name__ == '__main__':
    if sys.argv[1:2] == ['child']: child(*sys.argv[2:])
    else: main([int(a) for a in sys.argv[1:]] or [1000, 10_000, 100_000])
