"Feature extraction the slow way (frozen backbone, features recomputed every epoch) vs the cached-feature fast path"
import os, sys, tempfile, time, warnings
warnings.filterwarnings('ignore')
os.environ['FTL_CACHE'] = tempfile.mkdtemp()  # a cold feature cache
from fastai.vision.all import set_seed
from ftl.train import Config, run, prepare, build_learner, History
from ftl.strategies import STRATEGIES

def slow_path(cfg):
    "The same linear probe trained end to end: every epoch runs the frozen backbone again; returns seconds"
    set_seed(cfg.seed, reproducible=True)
    learn, _ = build_learner(cfg)
    with learn.no_bar(), learn.no_logging(), tempfile.TemporaryDirectory() as tmp:
        learn.path = __import__('pathlib').Path(tmp)
        t0 = time.time(); STRATEGIES[cfg.strategy](learn, cfg, [History()]); return time.time() - t0

if __name__ == '__main__':
    cfg = Config(arch=sys.argv[1] if len(sys.argv) > 1 else 'efficientnet_lite0', strategy='feature-extraction', patience=8)
    prepare(cfg)  # conversion and decoding are not what is timed
    slow_s = slow_path(cfg)
    t0 = time.time(); cold = run(cfg); cold_s = time.time() - t0
    t0 = time.time(); warm = run(cfg); warm_s = time.time() - t0
    print(f"{cfg.arch} @ {cfg.size}px, {cfg.epochs} epochs, ELPV 4 classes")
    print(f"slow (end-to-end, frozen backbone): {slow_s:6.1f}s training")
    for name, r, s in [('fast, cold cache', cold, cold_s), ('fast, warm cache', warm, warm_s)]:
        print(f"{name:17s} ({r.train_path}): {s:6.1f}s wall, test acc {r.test['accuracy']:.3f}, macro-F1 {r.test['macro_f1']:.3f}")
    print(f"speedup cold={slow_s/cold_s:.1f} (first run: computes and caches the features of all images)")
    print(f"speedup={slow_s/warm_s:.1f}")  # every later run on the same (arch, weights, size, dataset): seeds, fractions
