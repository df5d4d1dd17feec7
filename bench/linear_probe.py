"Feature extraction the slow way (frozen backbone, features recomputed every epoch) vs the cached-feature fast path"
import os, sys, tempfile, time, warnings
sys.path.insert(0, '.')
warnings.filterwarnings('ignore')
os.environ['FTL_CACHE'] = tempfile.mkdtemp()  # a cold feature cache
from ftl.train import Config, run
from ftl.models import weights_file
from ftl.data import load_source

if __name__ == '__main__':
    cfg = Config(arch=sys.argv[1] if len(sys.argv) > 1 else 'efficientnet_lite0', strategy='feature-extraction', augment=False)
    weights_file(cfg.arch); load_source(cfg.dataset, cfg.size)  # conversion and decoding are not what is timed
    t0 = time.time(); slow = run(cfg, export_to=os.path.join(tempfile.mkdtemp(), 'm.pkl')); slow_s = time.time() - t0  # export: slow path
    t0 = time.time(); cold = run(cfg); cold_s = time.time() - t0
    t0 = time.time(); warm = run(cfg); warm_s = time.time() - t0
    print(f"{cfg.arch} @ {cfg.size}px, {cfg.epochs} epochs max, patience {cfg.patience}, ELPV 4 classes")
    for name, r, s in [('slow', slow, slow_s), ('fast, cold cache', cold, cold_s), ('fast, warm cache', warm, warm_s)]:
        print(f"{name:17s} ({r['train_path']}): {s:6.1f}s wall, {len(r['history'])} epochs, "
              f"test acc {r['test']['accuracy']:.3f}, macro-F1 {r['test']['macro_f1']:.3f}")
    print(f"speedup cold={slow_s/cold_s:.1f} (first run: computes and caches the features of all images)")
    print(f"speedup={slow_s/warm_s:.1f}")  # every later run on the same (arch, weights, size, dataset): seeds, fractions
