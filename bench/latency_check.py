"Check ftl's batch-1 CPU latency against torch.utils.benchmark.Timer on the bare model in the same process"
import sys, timm, torch
from torch.utils.benchmark import Timer
from ftl.benchmark import time_model

def main(arch='tf_efficientnet_lite0', size=224):
    model = timm.create_model(arch, num_classes=4).eval()
    ftl_ms = time_model(model, 1, size, repeats=30)['median_s']*1e3
    x = torch.randn(1, 3, size, size)
    with torch.inference_mode():
        ref_ms = Timer('model(x)', globals=dict(model=model, x=x), num_threads=torch.get_num_threads()).blocked_autorange(min_run_time=3).median*1e3
    ratio = ftl_ms/ref_ms
    print(f'{arch} @ {size}px, {torch.get_num_threads()} threads: ftl {ftl_ms:.2f} ms, torch.utils.benchmark {ref_ms:.2f} ms')
    print(f'agreement_ratio={ratio:.3f}')
    return ratio

if __name__ == '__main__': sys.exit(0 if abs(main(*sys.argv[1:2]) - 1) <= 0.10 else 1)
