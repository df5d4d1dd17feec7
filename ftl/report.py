"What each suite writes from its records: tables under results/, figures under figures/"
from __future__ import annotations
import json
from pathlib import Path
import pandas as pd
from .records import read_records
from . import tables, figures

__all__ = ['write_suite_outputs', 'write_hyperparameters']

def _title(r):
    c = r['config']
    return f"{c['arch']} | {c['strategy']} | aug {'on' if c['augment'] else 'off'} | seed {c['seed']}"

def write_hyperparameters(results='results') -> Path:
    "The hyperparameter table of every experiment under `results`"
    return tables.write_table(tables.hyperparameter_table(read_records(results)), Path(results)/'hyperparameters')

def _architectures(recs, results, figs):
    bench = Path(results)/'benchmark'/'benchmark_cpu.csv'
    stats = pd.read_csv(bench) if bench.exists() else None
    if stats is not None:
        stats = stats[['arch', 'params', 'size_mb_fp32', 'latency_ms_bs1', 'throughput_img_s']].rename(
            columns={'latency_ms_bs1': 'cpu_latency_ms_bs1', 'throughput_img_s': 'cpu_img_s'})
    tables.write_table(tables.architecture_table(recs, stats), Path(results)/'architectures_table')
    figures.training_curves(sorted(recs, key=lambda r: (r['config']['arch'], r['config']['seed'])), _title,
                            Path(figs)/'curves_architectures', 'Architectures: fine-tune, 100 % data', ncols=3)

def _strategies(recs, results, figs):
    tables.write_table(tables.strategy_table(recs), Path(results)/'strategies_table')
    order = list(__import__('ftl.strategies', fromlist=['STRATEGIES']).STRATEGIES)
    recs = sorted(recs, key=lambda r: (order.index(r['config']['strategy']), r['config']['augment'], r['config']['seed']))
    figures.training_curves(recs, _title, Path(figs)/'curves_strategies', f"Strategies on {recs[0]['config']['arch']}", ncols=4)

def _data_efficiency(recs, results, figs):
    tab = tables.efficiency_table(recs)
    tables.write_table(tab, Path(results)/'data_efficiency_table')
    cross = {m: tables.crossing(recs, m) for m in ('test_accuracy', 'test_macro_f1')}
    (Path(results)/'data_efficiency_crossing.json').write_text(json.dumps(cross, indent=1))
    figures.efficiency_plot(tab, path=Path(figs)/'data_efficiency',
                            title=f"{recs[0]['config']['arch']} on {recs[0]['config']['dataset']}: pretrained vs from scratch")

OUTPUTS = {'architectures': _architectures, 'strategies': _strategies, 'data-efficiency': _data_efficiency}

def write_suite_outputs(suite, results='results', figs='figures'):
    "Tables and figures of `suite` from its records, plus the hyperparameter table of every experiment"
    recs = read_records(Path(results)/suite)
    if recs and suite in OUTPUTS: OUTPUTS[suite](recs, results, figs)
    if recs: write_hyperparameters(results)
