"What each architecture costs to run: parameters, MB, batch-1 latency and throughput"
from __future__ import annotations
import pandas as pd
from ..models import OFFLINE
from ..runner import Study, register
from ..prose import num, table, title
from .headline import settings as headline_settings


def values(v, raw, frames, lay, p):
    "The full inference benchmark, every device measured"
    files = sorted((lay.results/'benchmark').glob('benchmark_*.csv'))
    if not files: return
    b = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    v['benchmark'] = table(b, {'architecture': lambda x: title(x.arch), 'device': lambda x: x.device_name, 'px': lambda x: num(x.image_size),
                               'precision': lambda x: x.precision, 'params (M)': lambda x: num(x.params/1e6, 2),
                               'MB fp32 / fp16': lambda x: f'{x.size_mb_fp32:.1f} / {x.size_mb_fp16:.1f}',
                               'latency, ms per image at batch 1 (IQR)': lambda x: f'{x.latency_ms_bs1:.1f} ({x.latency_ms_bs1_iqr:.1f})',
                               'throughput, images/s': lambda x: f'{x.throughput_img_s:.0f}', 'at batch': lambda x: num(x.throughput_bs), 'threads': lambda x: num(x.threads)})
    v['gpu_measured'] = bool((b.device != 'cpu').any())

@register('benchmark', kind='study', values=values, title='Inference cost', order=80)
def benchmark(study: Study):
    "What each architecture costs to run at the preset's and the headline's size: parameters, MB, batch-1 latency and throughput"
    from ..benchmark import benchmark_study
    archs = [study.arch] if study.arch else [a.name for a in OFFLINE]
    sizes = tuple(sorted({study.config().size, headline_settings(study.preset)['size']}))
    print(benchmark_study(study.layout.results/'benchmark', archs, sizes).to_string(index=False))
