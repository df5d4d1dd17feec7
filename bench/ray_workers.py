"Wall time of a small suite on synthetic data: sequential in one process vs Ray tasks on 2 local workers"
import shutil, sys, tempfile, time, warnings
warnings.filterwarnings('ignore')
from dataclasses import replace
import torch
from ftl.suites import Suite, Study, run_suite, sequential
from ftl.train import Config, prepare

if __name__ == '__main__':
    n, size = (int(sys.argv[1]) if len(sys.argv) > 1 else 6), (int(sys.argv[2]) if len(sys.argv) > 2 else 64)
    base = Config(dataset='synthetic', size=size, arch='mobilenetv2', strategy='full-finetune', epochs=3, bs=16, patience=3)
    grid = [replace(base, seed=s) for s in range(n)]
    suite = Suite('grid', 'benchmark grid', configs=lambda st: grid)
    prepare(base)  # decoding and conversion are not what is timed
    times = {}
    for name, kw in [('sequential', dict(executor=sequential)), ('ray --workers 2', {})]:
        out = tempfile.mkdtemp()
        study = Study(results=out, workers=None if name == 'sequential' else 2)
        if name != 'sequential':
            import ray; ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200*2**20)
        t0 = time.time(); run_suite(suite, study, **kw); times[name] = time.time() - t0
        shutil.rmtree(out)
    print(f"{n} runs of MobileNetV2 at {size} px, 3 epochs each, on {torch.get_num_threads()} threads / 2 cores:")
    for k, t in times.items(): print(f"  {k}: {t:.1f}s")
    print(f"speedup={times['sequential']/times['ray --workers 2']:.2f}  (Ray start-up included)")
