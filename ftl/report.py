"What each suite writes from its records: tables under results/, figures under figures/"
from __future__ import annotations
import json
from pathlib import Path
import numpy as np, pandas as pd
from .records import read_records
from . import tables, figures
from .evaluate import majority_baseline

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
    out['params'] = (out.params/1e6).round(2)
    out = out.rename(columns={'params': 'params_M'})
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
    from .strategies import STRATEGIES
    main = pd.Series([r['config']['arch'] for r in recs]).value_counts().index[0]  # the suite's architecture; others: earlier choices
    recs = sorted(recs, key=lambda r: (r['config']['arch'] != main, r['config']['arch'], list(STRATEGIES).index(r['config']['strategy']),
                                       r['config']['augment'], r['config']['seed']))
    tables.write_table(tables.strategy_table(recs), Path(results)/'strategies_table')
    figures.training_curves(recs, _title, Path(figs)/'curves_strategies', f"Strategies on {main}", ncols=4)

def _data_efficiency(recs, results, figs):
    tab = tables.efficiency_table(recs)
    tables.write_table(tab, Path(results)/'data_efficiency_table')
    cross = {m: tables.crossing(recs, m) for m in ('test_accuracy', 'test_macro_f1')}
    cross['majority_baseline'] = majority_baseline(recs[0]['test'])  # the same fixed test split for every run
    (Path(results)/'data_efficiency_crossing.json').write_text(json.dumps(cross, indent=1))
    figures.efficiency_plot(tab, path=Path(figs)/'data_efficiency', baseline=cross['majority_baseline'],
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

# --- findings: the study's answers, written from the tables (no number typed by hand) ---------------------------------

def _onoff(a) -> str: return 'on' if str(a) in ('True', 'true', '1') else 'off'

def _mean(col: pd.Series) -> pd.Series: return col.astype(str).str.split(' ').str[0].astype(float)  # of 'mean ± std' cells

def _arch_finding(results) -> str | None:
    "Which backbone, and what it costs"
    a = _md(Path(results)/'architectures_table')
    if a is None or a.empty: return None
    a['v'] = _mean(a.valid_macro_f1)
    best, lat = a.loc[a.v.idxmax()], 'cpu_ms_bs1@84'
    s = (f"Backbone: {best.arch} ({best.family}) has the best validation macro-F1 ({best.valid_macro_f1}) of the {len(a)} pretrained "
         f"backbones fine-tuned alike; on the test split it scores accuracy {best.test_accuracy}, macro-F1 {best.test_macro_f1}. ")
    if lat in a:
        fast, big = a.loc[a[lat].idxmin()], a.loc[a.params_M.idxmax()]
        s += (f"It has {best.params_M:.1f} M parameters ({best.size_mb_fp32} MB) and runs at {best[lat]} ms per image on this "
              f"CPU at 84 px; the fastest is {fast.arch} ({fast[lat]} ms), the largest {big.arch} ({big.params_M:.1f} M, "
              f"{big.size_mb_fp32} MB, {big[lat]} ms).")
    return s

def _strategy_finding(results) -> str | None:
    "Which way of fine-tuning, whether augmentation helps, where it overfits"
    t = _md(Path(results)/'strategies_table')
    if t is None or t.empty: return None
    t = t[t.arch == t.arch.iloc[0]]  # the suite's architecture comes first; other rows are runs from an earlier choice
    for c in ('valid_macro_f1', 'test_macro_f1', 'test_accuracy'): t[c[:1] + c.split('_')[-1]] = _mean(t[c])
    best, worst = t.loc[t.vf1.idxmax()], t.loc[t.vf1.idxmin()]
    s = (f"Strategy on {best.arch}: {best.strategy} with augmentation {_onoff(best.augment)} is best by validation macro-F1 "
         f"({best.vf1:.3f}; test accuracy {best.taccuracy:.3f}, macro-F1 {best.tf1:.3f}); the weakest is {worst.strategy}, "
         f"augmentation {_onoff(worst.augment)} (validation {worst.vf1:.3f}, test macro-F1 {worst.tf1:.3f}). ")
    on, off = t[t.augment.astype(str) == 'True'].set_index('strategy'), t[t.augment.astype(str) == 'False'].set_index('strategy')
    both = on.index.intersection(off.index)
    if len(both):
        d = (on.loc[both, 'tf1'] - off.loc[both, 'tf1'])
        s += (f"Augmentation changes test macro-F1 by {d.mean():+.3f} on average over {len(both)} strategies "
              f"(from {d.min():+.3f} to {d.max():+.3f}); it helps {int((d > 0).sum())} of them. ")
    up = t[t.valid_up_train_down.astype(float) > 0]
    s += (f"Overfitting signal (validation loss rising while training loss fell after the best epoch): {len(up)} of {len(t)} "
          f"runs; early stopping restored the best validation epoch in every run. ")
    cap = t[t.epochs_after_best.astype(float) == 0]
    if len(cap): s += (f"{len(cap)} of {len(t)} runs were still improving at the epoch cap (best epoch = last): "
                       + ', '.join(f"{r.strategy} aug {_onoff(r.augment)}" for r in cap.itertuples()) + '; a longer budget may help them.')
    return s

def _crossing_sentence(c, metric, lo_f, n_full) -> str:
    "The crossing answer for one metric, in words"
    if np.isnan(c['fraction']): return f"pretrained never reaches the scratch@100 % {metric} ({c['level']:.3f}) at any measured fraction"
    if c.get('at_most_smallest'): return (f"pretrained already matches the scratch@100 % {metric} ({c['level']:.3f}) at the smallest "
                                          f"fraction measured, {lo_f:.0%}")
    return (f"pretrained matches the scratch@100 % {metric} ({c['level']:.3f}) at about {c['fraction']:.0%} of the training data "
            f"(~{c['fraction']*n_full:.0f} images; 95 % bootstrap interval {c['lo95']:.0%}-{c['hi95']:.0%}, reached in "
            f"{c['boot_reached']:.0%} of resamples)")

def _efficiency_finding(results) -> str | None:
    "How much labelled data, and the answer to the crossing question"
    e, cj = _md(Path(results)/'data_efficiency_table'), Path(results)/'data_efficiency_crossing.json'
    if e is None or e.empty or not cj.exists(): return None
    cross = json.loads(cj.read_text())
    pt, sc = e[e.init == 'pretrained'].set_index('fraction'), e[e.init == 'scratch'].set_index('fraction')
    lo_f, n_full = min(pt.index), int(pt.n_train.max())
    s = f"Data: pretrained (fine-tune) vs from scratch, {int(pt.seeds.min())} seeds per point. "
    if 1.0 in sc.index and 1.0 in pt.index:
        s += (f"With all {n_full} training images: pretrained test accuracy {pt.loc[1.0, 'test_accuracy']}, macro-F1 "
              f"{pt.loc[1.0, 'test_macro_f1']} vs scratch {sc.loc[1.0, 'test_accuracy']}, {sc.loc[1.0, 'test_macro_f1']}. ")
    if lo_f in sc.index:
        s += (f"At {lo_f:.0%} ({int(pt.loc[lo_f, 'n_train'])} images, {int(pt.loc[lo_f, 'n_min_class'])} in the smallest class): "
              f"pretrained {pt.loc[lo_f, 'test_accuracy']} / {pt.loc[lo_f, 'test_macro_f1']} vs scratch "
              f"{sc.loc[lo_f, 'test_accuracy']} / {sc.loc[lo_f, 'test_macro_f1']}. ")
    if 'majority_baseline' in cross:
        base = cross['majority_baseline']
        s += f"(Predicting the majority class alone scores accuracy {base['acc']:.3f} and macro-F1 {base['f1']:.3f}.) "
    s += ('Macro-F1: ' + _crossing_sentence(cross['test_macro_f1'], 'macro-F1', lo_f, n_full) + '. Accuracy: ' +
          _crossing_sentence(cross['test_accuracy'], 'accuracy', lo_f, n_full) + '.')
    return s

def _error_finding(results) -> str | None:
    "Where and why the best model fails"
    p, mc = Path(results)/'analysis'/'errors.csv', Path(results)/'analysis'/'most_confused.csv'
    if not p.exists(): return None
    err = pd.read_csv(p); counts = err.category.value_counts()
    s = (f"Errors: of the {len(err)} highest-loss misclassified test images, " +
         ', '.join(f'{n} {cat}' for cat, n in counts.items()) + '. ')
    confused = pd.read_csv(mc) if mc.exists() else None
    if confused is not None and len(confused):
        top = confused.iloc[0]
        s += f"The most confused pair is true {top.true} predicted {top.predicted} ({top['count']} test images). "
    return s + ('Categories are suggestions for a person to check (errors.csv has a commentary column): neighbours are found '
                "in the model's own feature space, which favours the labelling-error rule for confident mistakes, and at 84 px "
                'fine cracks may be invisible.')

def findings(results='results') -> list:
    "The study's answers as sentences computed from the committed tables"
    return [f for f in (_arch_finding(results), _strategy_finding(results), _efficiency_finding(results), _error_finding(results)) if f]

# --- the PDF report -----------------------------------------------------------------------------------------------------

def _page(pdf, blocks, page_no):
    "One A4 page laid out top-down from blocks: ('h', text), ('p', text), ('table', df, font), ('img', path, height in inches)"
    import textwrap
    import matplotlib.pyplot as plt, matplotlib.image as mpimg
    W, H, M = 8.27, 11.69, 0.6
    fig = plt.figure(figsize=(W, H)); y = H - M
    for b in blocks:
        if b[0] == 'h':
            fig.text(M/W, y/H, b[1], fontsize=12, fontweight='bold', va='top'); y -= 0.4
        elif b[0] == 'p':
            lines = textwrap.wrap(b[1], 118)
            fig.text(M/W, y/H, '\n'.join(lines), fontsize=8.5, va='top', linespacing=1.4); y -= 0.17*len(lines) + 0.15
        elif b[0] == 'table':
            df, fs = b[1], b[2] if len(b) > 2 else 7
            h = 0.19*(len(df) + 1)*fs/7
            ax = fig.add_axes([M/W, (y - h)/H, 1 - 2*M/W, h/H]); ax.axis('off')
            cells = np.array([['' if pd.isna(v) else str(v) for v in row] for row in df.itertuples(index=False)], dtype=object)
            heads = [c.replace('_', ' ') if len(c) <= 12 else c.replace('_', '\n', 1) for c in df.columns]
            widths = np.array([max([len(x) for x in cells[:, j]] + [max(map(len, heads[j].split('\n')))]) for j in range(len(heads))], float)
            t = ax.table(cellText=cells, colLabels=heads, cellLoc='left', colWidths=list(widths/widths.sum()), bbox=[0, 0, 1, 1])
            t.auto_set_font_size(False); t.set_fontsize(fs)
            y -= h + 0.25
        elif b[0] == 'img' and Path(b[1]).exists():
            img = mpimg.imread(b[1]); h = min(b[2], (1 - 2*M/W)*W*img.shape[0]/img.shape[1])
            ax = fig.add_axes([M/W, (y - h)/H, 1 - 2*M/W, h/H]); ax.imshow(img); ax.axis('off'); y -= h + 0.2
    fig.text(0.5, 0.3/H, f'ftl report, page {page_no}', ha='center', fontsize=7, color='grey')
    pdf.savefig(fig); plt.close(fig)

def _md(path, cols=None, rename=None):
    "A committed results table, if it exists"
    p = Path(path).with_suffix('.csv')
    if not p.exists(): return None
    df = pd.read_csv(p)
    return (df[[c for c in cols if c in df]] if cols else df).rename(columns=rename or {}).round(3)

CAVEATS = ('Caveats: the quick preset runs one seed per architecture and strategy, so differences of a few points there are '
           'within seed-to-seed noise (the data-efficiency suite, 3 seeds per point, shows its size); images are 84 px rather '
           'than the 300 px originals, at most 8 epochs, on a 2-core CPU. `--preset full` (224 px, 30 epochs, 3 seeds) is the '
           'setting for a GPU. Architectures and strategies stop early (patience 3 on validation loss) on top of a one-cycle '
           'schedule, which can end a run near its peak learning rate, before the schedule anneals; the data-efficiency '
           'suite therefore trains every run for its whole budget and restores the best validation epoch.')

EFFICIENCY_DESIGN = ('Nested stratified subsets of the training split (every class kept; validation and test never shrink); '
                     'both arms see the same subset at the same seed. Pretrained: fastai fine_tune. Scratch: the same '
                     'architecture from random init, all layers, lr 1e-2, 1.5x the epochs. Both arms train the whole '
                     'one-cycle budget (no early stopping: it would fire during the warm-up) and restore the best validation '
                     'epoch. Below 25 % of the data, epochs grow by 0.25/fraction so every run gets at least a quarter of the '
                     'full-data optimizer steps. '
                     'acc / f1 diff: pretrained - scratch test accuracy / macro-F1, mean over paired seeds with a 95 % t-interval.')

def _strategy_notes(results) -> str:
    "What each strategy trains, with the feature-extraction head as it ran"
    fe = [r for r in read_records(Path(results)/'strategies') if r['config']['strategy'] == 'feature-extraction']
    head = fe[0]['hyperparams']['head_repr'] if fe else 'a linear layer'
    return ('feature-extraction: backbone frozen including BatchNorm statistics, only the head trains: ' + head + ' on globally '
            'average-pooled backbone features (without augmentation on features cached once). full-finetune: all layers, one '
            'learning rate. gradual-unfreeze: head first, then freeze_to(-2), (-3), ... one group per stage. discriminative-lr: '
            'all layers, slice(lr/100, lr) over 4 groups. fine-tune: fastai fine_tune (1 frozen epoch, then all). gap = '
            'validation - training loss at the best / last epoch; valid_up_train_down: validation loss rose after the best epoch '
            'while training loss fell (share of runs). best_epoch: 1-based, as in the curves, counting frozen-stage epochs.')

def build_report(results='results', figs='figures', out='report/report.pdf') -> Path:
    "The study's PDF report (at most 10 pages), built only from committed records, tables and figures"
    from matplotlib.backends.backend_pdf import PdfPages
    results, figs = Path(results), Path(figs)
    arch = _md(results/'architectures_table', ['arch', 'family', 'seeds', 'test_accuracy', 'test_macro_f1', 'valid_macro_f1',
                                                'params_M', 'size_mb_fp32', 'cpu_ms_bs1@84', 'cpu_ms_bs1@224', 'gpu_latency'])
    strat = _md(results/'strategies_table', ['arch', 'strategy', 'augment', 'test_accuracy', 'test_macro_f1', 'valid_macro_f1', 'best_epoch',
                                            'epochs_run', 'gap_best', 'gap_last', 'epochs_after_best', 'valid_up_train_down', 'train_min'])
    hyper = _md(results/'hyperparameters', ['suite', 'arch', 'init', 'strategy', 'augment', 'fraction', 'seed', 'size', 'batch_size',
                                            'stages', 'peak_lr_per_group', 'epochs_max', 'epochs_run'])
    if hyper is not None:  # the last stage's rates (all groups trainable); every stage's are in results/hyperparameters.csv
        hyper['peak_lr_per_group'] = hyper.peak_lr_per_group.str.split(' | ', regex=False).str[-1]
    eff = _md(results/'data_efficiency_table', ['fraction', 'init', 'seeds', 'n_train', 'n_min_class', 'lr', 'epochs_max', 'patience', 'test_accuracy',
                                                'test_macro_f1', 'acc_diff', 'acc_diff_lo95', 'acc_diff_hi95', 'f1_diff',
                                                'f1_diff_lo95', 'f1_diff_hi95'])
    per_class = _md(results/'analysis'/'per_class')
    errors = pd.read_csv(results/'analysis'/'errors.csv') if (results/'analysis'/'errors.csv').exists() else None
    bench = _md(results/'benchmark'/'benchmark_cpu', ['arch', 'image_size', 'params', 'size_mb_fp32', 'size_mb_fp16',
                                                      'latency_ms_bs1', 'latency_ms_bs1_iqr', 'throughput_img_s', 'threads'])
    best = best_record(results) if list(results.glob('architectures/*.json')) else None
    pages = [[('h', 'ftl: transfer learning on ELPV solar-cell defects'),
              ('p', 'Dataset: ELPV (Deitsch et al. 2019, CC-BY-NC-SA-4.0), 2,624 electroluminescence images of solar cells, four '
                    'defect-probability classes (functional / possibly / likely defective / defective: 1508 / 295 / 106 / 715). '
                    'Stratified 70/15/15 train/validation/test split, fixed seed; validation alone drives early stopping, the '
                    'restored epoch and every choice of model; the test split is evaluated once per run. Quick preset for a '
                    '2-core CPU: 84 px images, at most 8 epochs, patience 3 on validation loss, batch 32, Adam with one-cycle. '
                    'All numbers below are read from the JSON records in results/ by ftl itself; regenerate with '
                    '`python experiments.py --suite report`.'),
              ('p', (f"Best run by validation macro-F1: {best['config']['arch']}, {best['config']['strategy']}, augmentation "
                     f"{'on' if best['config']['augment'] else 'off'} (validation macro-F1 {best['history'][best['best_epoch']]['macro_f1']:.3f}; "
                     f"test accuracy {best['test']['accuracy']:.3f}, macro-F1 {best['test']['macro_f1']:.3f}).") if best else
                    'No architecture records yet.')]]
    pages[0] += [('h', 'Findings')] + [('p', f) for f in findings(results)] + [('p', CAVEATS)]
    if arch is not None:
        pages.append([('h', 'Architectures: accuracy and cost in one table (pretrained, fine-tune, 100 % data)'), ('table', arch, 6.5),
                      ('p', 'Latency: CPU, 2 threads, fp32, batch 1, median of 30 timed passes after warm-up (ms per image). '
                            'Full benchmark with throughput and spread on the last page.'),
                      ('img', figs/'curves_architectures.png', 3.2)])
    if strat is not None: pages.append([('h', 'Fine-tuning strategies'), ('table', strat, 6), ('p', _strategy_notes(results)),
                                        ('img', figs/'curves_strategies.png', 6.2)])
    if hyper is not None: pages.append([('h', 'Hyperparameters of every experiment'),
                                        ('p', 'Peak learning rate per parameter group (early → head) in the last training stage '
                                              '(every stage, with frozen groups, in results/hyperparameters.csv); all runs: Adam '
                                              '(wd 0.01), one-cycle, the best validation-loss epoch restored.'),
                                        ('table', hyper, 5.5)])
    pages.append([('h', 'Data efficiency: pretrained vs from scratch')] +
                 ([('p', EFFICIENCY_DESIGN), ('table', eff, 6.5), ('img', figs/'data_efficiency.png', 3.5)] if eff is not None else
                  [('p', 'Not yet run: `python experiments.py --suite data-efficiency` (30 runs; records resume).')]))
    if per_class is not None:
        counts = errors.category.value_counts().rename_axis('category').reset_index() if errors is not None else None
        pages.append([('h', 'Where the best model fails (test split)'), ('img', figs/'confusion_best.png', 3.6), ('table', per_class, 7)]
                     + ([('p', 'Suggested failure categories of the highest-loss misclassified test images:'), ('table', counts, 7)]
                        if counts is not None else []))
        pages.append([('h', 'Misclassified test images by suggested failure category'), ('img', figs/'error_gallery.png', 9.5)])
    if bench is not None: pages.append([('h', 'Inference cost (CPU, 2 threads, fp32)'), ('table', bench, 6.5),
                                        ('p', 'Latency: median of 30 batch-1 forward passes after warm-up (IQR beside it); throughput '
                                              'at batch 32. GPU latency: not measured in this session (no GPU machine).')])
    out = Path(out); out.parent.mkdir(parents=True, exist_ok=True)
    with PdfPages(out) as pdf:
        for i, blocks in enumerate(pages[:10], 1): _page(pdf, blocks, i)
    return out
