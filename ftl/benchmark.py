"Inference cost of each architecture: parameters, size on disk, latency and throughput, timed as timm's benchmark does"
from __future__ import annotations
import io, time
from pathlib import Path
import numpy as np, pandas as pd, timm, torch

__all__ = ['param_counts', 'size_mb', 'time_model', 'benchmark_arch', 'benchmark_table', 'benchmark_study', 'cost_table']

def param_counts(model) -> dict:
    "Total and trainable parameter counts"
    return dict(params=sum(p.numel() for p in model.parameters()),
                trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad))

def size_mb(model, dtype=torch.float32) -> float:
    "Megabytes (1e6 bytes) of the model's state_dict saved with `torch.save` in `dtype`"
    buf = io.BytesIO()
    torch.save({k: v.to(dtype) if v.is_floating_point() else v for k, v in model.state_dict().items()}, buf)
    return buf.getbuffer().nbytes/1e6

def _sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)

def time_model(model, bs, size, device='cpu', warmup=3, repeats=10, amp=False, channels_last=False) -> dict:
    "Median and spread of seconds per forward pass at batch `bs` (warm-up, synchronised, repeated)"
    device = torch.device(device)
    model = model.eval().to(device)
    x = torch.randn(bs, 3, size, size, device=device)
    if channels_last: model, x = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    ctx = torch.autocast(device.type, dtype=torch.float16) if amp else torch.autocast(device.type, enabled=False)
    times = []
    with torch.inference_mode(), ctx:
        for i in range(warmup + repeats):
            _sync(device); t = time.perf_counter()
            model(x)
            _sync(device)
            if i >= warmup: times.append(time.perf_counter() - t)
    t = np.array(times)
    return dict(median_s=float(np.median(t)), q25_s=float(np.quantile(t, .25)), q75_s=float(np.quantile(t, .75)), repeats=repeats)

def benchmark_arch(arch, n_classes=4, size=224, device="cpu", big_bs=32, amp=False, channels_last=False, repeats=30) -> dict:
    "Parameters, MB (fp32, fp16), batch-1 latency in ms and large-batch throughput of `arch`'s inference model"
    from .models import get_arch
    a = get_arch(arch)
    model = timm.create_model(a.timm_name, pretrained=False, num_classes=n_classes,
                              **(dict(img_size=size) if a.family.startswith('ViT') else {}))
    one = time_model(model, 1, size, device, repeats=repeats, amp=amp, channels_last=channels_last)
    big = time_model(model, big_bs, size, device, repeats=max(5, repeats//5), amp=amp, channels_last=channels_last)
    return dict(arch=a.name, family=a.family, **param_counts(model), size_mb_fp32=size_mb(model), size_mb_fp16=size_mb(model, torch.float16),
                image_size=size, device=str(device) if device != 'cpu' else 'cpu', device_name=(torch.cuda.get_device_name()
                if torch.device(device).type == 'cuda' else 'CPU'), threads=torch.get_num_threads(),
                precision='amp-fp16' if amp else 'fp32', channels_last=channels_last,
                latency_ms_bs1=one['median_s']*1e3, latency_ms_bs1_iqr=(one['q75_s'] - one['q25_s'])*1e3,
                throughput_img_s=big_bs/big['median_s'], throughput_bs=big_bs)

def benchmark_table(archs, **kw) -> pd.DataFrame:
    "`benchmark_arch` for each architecture, one row each"
    return pd.DataFrame([benchmark_arch(a, **kw) for a in archs])

def benchmark_study(out_dir, archs, sizes=(84, 224)) -> pd.DataFrame:
    "Inference benchmark of `archs` at `sizes` on this machine's device (CUDA: also AMP + channels_last), written to `out_dir`"
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    runs = [dict(size=s, device=dev) for s in sizes]
    if dev == 'cuda': runs += [dict(size=s, device=dev, amp=True, channels_last=True, big_bs=256) for s in sizes]
    df = pd.concat([benchmark_table(archs, **kw) for kw in runs], ignore_index=True)
    out = Path(out_dir)/f'benchmark_{dev}.csv'
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    return df

def cost_table(bench_dir) -> pd.DataFrame | None:
    "Per architecture: parameters (M), MB (fp32) and batch-1 latency per device, size and precision, from the benchmark CSVs"
    frames = [pd.read_csv(p) for p in sorted(Path(bench_dir).glob('benchmark_*.csv'))]
    if not frames: return None
    b = pd.concat(frames, ignore_index=True)
    out = b.groupby('arch').agg(params_M=('params', 'first'), size_mb=('size_mb_fp32', 'first'))
    out['params_M'] /= 1e6
    for (dev, size, prec), d in b.groupby(['device', 'image_size', 'precision']):
        out[f"{'cpu' if dev == 'cpu' else 'gpu'}_ms_{size}px" + ('' if prec == 'fp32' else f'_{prec}')] = d.set_index('arch').latency_ms_bs1
    return out.reset_index()
