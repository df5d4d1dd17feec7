import time, torch, pytest
from torch import nn
from ftl.benchmark import param_counts, size_mb, time_model, benchmark_arch

def tiny(): return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))

def test_param_counts_match_numel_and_trainable():
    m = tiny()
    m[0].weight.requires_grad_(False)
    c = param_counts(m)
    assert c['params'] == sum(p.numel() for p in m.parameters()) == 8*3*9 + 8 + 16 + 18
    assert c['trainable_params'] == c['params'] - 8*3*9

def test_size_on_disk_is_about_four_bytes_per_float_and_halves_in_fp16():
    m = nn.Linear(1000, 1000)
    assert 4.0 < size_mb(m) < 4.1 and 2.0 < size_mb(m, torch.float16) < 2.1

class Sleeper(nn.Module):
    "A model whose forward pass takes a known time"
    def __init__(self, seconds): super().__init__(); self.seconds, self.lin = seconds, nn.Linear(1, 1)
    def forward(self, x): time.sleep(self.seconds); return x

def test_timing_measures_the_forward_pass_and_skips_the_warm_up():
    t = time_model(Sleeper(0.02), 1, 8, warmup=1, repeats=5)
    assert 0.02 <= t['median_s'] < 0.03 and t['repeats'] == 5
    calls = []
    class Counter(Sleeper):
        def forward(self, x): calls.append(1); return x
    time_model(Counter(0), 1, 8, warmup=3, repeats=4)
    assert len(calls) == 7

def test_benchmark_arch_reports_sane_numbers():
    r = benchmark_arch('mobilenetv2', size=32, big_bs=4, repeats=3)
    assert r['params'] == r['trainable_params'] > 2e6 and r['size_mb_fp32'] > r['size_mb_fp16'] > 0
    assert r['latency_ms_bs1'] > 0 and r['throughput_img_s'] > 0 and r['device'] == 'cpu'
