"What each suite writes from its records: tables under results/, figures under figures/"
from __future__ import annotations
import json
from pathlib import Path
import pandas as pd
from .records import read_records
from . import tables, figures

__all__ = ['write_suite_outputs', 'write_hyperparameters', 'best_record', 'per_class_table', 'analysis_suite', 'benchmark_suite']

def _title(r):
    c = r['config']
    return f"{c['arch']} | {c['strategy']} | aug {'on' if c['augment'] else 'off'} | seed {c['seed']}"

def write_hyperparameters(results='results') -> Path:
    "The hyperparameter table of every experiment under `results`"
    return tables.write_table(tables.hyperparameter_table(read_records(results)), Path(results)/'hyperparameters')

def _cost_columns(results) -> pd.DataFrame | None:
    "Parameters, MB and latency per architecture from the benchmark CSVs (CPU; GPU where measured), one row per arch"
    cpu, gpu = Path(results)/'benchmark'/'benchmark_cpu.csv', Path(results)/'benchmark'/'benchmark_cuda.csv'
    if not cpu.exists(): return None
    b = pd.read_csv(cpu)
    out = b.groupby('arch').first()[['params', 'size_mb_fp32']].round(1)
    for size, d in b.groupby('image_size'):
        out[f'cpu_ms_bs1@{size}'] = d.set_index('arch').latency_ms_bs1.round(1)
    if gpu.exists():
        g = pd.read_csv(gpu)
        for (size, prec), d in g.groupby(['image_size', 'precision']):
            out[f'gpu_ms_bs1@{size} {prec}'] = d.set_index('arch').latency_ms_bs1.round(2)
    else: out['gpu_latency'] = 'not measured'
    return out.reset_index()

def _architectures(recs, results, figs):
    tables.write_table(tables.architecture_table(recs, _cost_columns(results)), Path(results)/'architectures_table')
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

def best_record(results='results', suites=('architectures', 'strategies')) -> dict:
    "The run with the best validation macro-F1 (at its restored epoch) among `suites`: chosen without the test set"
    recs = [r for s in suites for r in read_records(Path(results)/s)]
    if not recs: raise FileNotFoundError(f"No records under {results}/{{{','.join(suites)}}}: run those suites first")
    return max(recs, key=lambda r: r['history'][r['best_epoch']]['macro_f1'])

def per_class_table(test: dict) -> pd.DataFrame:
    "Per-class precision / recall / F1 / support with the best and worst class (by F1) marked"
    df = pd.DataFrame(test['per_class']).T.rename_axis('class').reset_index()
    df['mark'] = ''
    df.loc[df.f1.idxmax(), 'mark'], df.loc[df.f1.idxmin(), 'mark'] = 'best', 'worst'
    return df.round(3)

def analysis_suite(results='results', figs='figures', models='models', n_errors=16):
    "Export the best model, reload it with `load_learner`, and analyse its test errors"
    from .train import Config, run
    from .records import save_record, record_path
    from .analysis import interpret, failure_table
    rec = best_record(results)
    cfg = Config(**rec['config'])
    pkl = Path(models)/f'{cfg.key()}.pkl'
    if not pkl.exists():  # retrain the chosen config (seeded, so the same model) and export it
        rec = run(cfg, export_to=pkl)
        save_record(rec, record_path(results, 'analysis', cfg))
    interp = interpret(pkl, cfg.dataset, cfg.size)
    acc = float((interp.preds.argmax(1) == interp.targs).float().mean())
    if abs(acc - rec['test']['accuracy']) > 1e-6:
        raise RuntimeError(f"Reloaded model's test accuracy {acc:.4f} differs from the record's {rec['test']['accuracy']:.4f}")
    out = Path(results)/'analysis'
    title = f"{cfg.arch}, {cfg.strategy}, aug {'on' if cfg.augment else 'off'} on {cfg.dataset} test set"
    figures.confusion(rec['test'], Path(figs)/'confusion_best', title)
    tables.write_table(per_class_table(rec['test']), out/'per_class')
    pd.DataFrame(interp.most_confused(), columns=['true', 'predicted', 'count']).to_csv(out/'most_confused.csv', index=False)
    errors = failure_table(interp, n_errors)
    errors.drop(columns=['test_pos']).round(4).to_csv(out/'errors.csv', index=False)
    src = interp.source
    figures.error_gallery(errors, src.images[src.idx('test')[errors.test_pos]], Path(figs)/'error_gallery',
                          title=f'Misclassified test images by suggested failure category: {title}')
    interp.plot_top_losses(9, figsize=(9, 9))
    import matplotlib.pyplot as plt
    figures.save(plt.gcf(), Path(figs)/'top_losses')
    return dict(record=rec, errors=errors, interp=interp, reloaded_accuracy=acc)

def benchmark_suite(results='results', archs=None, sizes=(84, 224)):
    "CPU (or CUDA) inference benchmark of every offline architecture, one CSV per device under results/benchmark"
    import torch
    from .benchmark import benchmark_table
    from .models import OFFLINE
    archs = archs or [a.name for a in OFFLINE]
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    runs = [dict(size=s, device=dev) for s in sizes]
    if dev == 'cuda': runs += [dict(size=s, device=dev, amp=True, channels_last=True, big_bs=256) for s in sizes]
    df = pd.concat([benchmark_table(archs, **kw) for kw in runs], ignore_index=True)
    out = Path(results)/'benchmark'/f'benchmark_{dev}.csv'
    out.parent.mkdir(parents=True, exist_ok=True)
    df.round(4).to_csv(out, index=False)
    return df
