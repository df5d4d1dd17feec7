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
    "A model whose i-th forward pass takes `seconds[i]`"
    def __init__(self, seconds): super().__init__(); self.seconds, self.calls, self.lin = list(seconds), 0, nn.Linear(1, 1)
    def forward(self, x): time.sleep(self.seconds[self.calls]); self.calls += 1; return x

def test_timing_measures_the_forward_pass_and_skips_the_warm_up():
    m = Sleeper([0.3, 0.3] + [0.02, 0.04, 0.06, 0.08, 0.10])  # two slow warm-up passes, then 20 ms apart
    t = time_model(m, 1, 8, warmup=2, repeats=5)
    assert m.calls == 7 and t['repeats'] == 5
    slack = 0.01  # a sleep overruns (scheduling), never underruns; half the spacing, so a neighbour cannot pass
    for k, want in (('median_s', 0.06), ('q25_s', 0.04), ('q75_s', 0.08)): assert want <= t[k] < want + slack, (k, t)

def test_benchmark_arch_reports_latency_per_pass_and_throughput_per_image(monkeypatch):
    import ftl.benchmark as b
    monkeypatch.setattr(b, 'time_model', lambda model, bs, size, device='cpu', **kw:  # 4 ms a pass plus 1 ms an image
                        dict(median_s=0.004 + 0.001*bs, q25_s=0.003, q75_s=0.007, repeats=kw['repeats']))
    r = b.benchmark_arch('mobilenetv2', size=32, big_bs=16, repeats=5)
    assert r['latency_ms_bs1'] == pytest.approx(5) and r['latency_ms_bs1_iqr'] == pytest.approx(4)
    assert r['throughput_img_s'] == pytest.approx(16/0.020) and r['throughput_bs'] == 16

def test_benchmark_arch_reports_sane_numbers():
    r = benchmark_arch('mobilenetv2', size=32, big_bs=4, repeats=3)
    assert r['params'] == r['trainable_params'] > 2e6 and r['size_mb_fp32'] > r['size_mb_fp16'] > 0
    assert r['latency_ms_bs1'] > 0 and r['throughput_img_s'] > 0 and r['device'] == 'cpu'
