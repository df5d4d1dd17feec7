"Tables built from run records: overfitting signals, strategies, architectures, hyperparameters"
from __future__ import annotations
from pathlib import Path
import numpy as np, pandas as pd

__all__ = ['overfitting_signals', 'run_row', 'mean_std', 'strategy_table', 'architecture_table', 'hyperparameter_table',
           'write_table']

def overfitting_signals(history, best_epoch) -> dict:
    "Train-validation loss gap at the best and last epoch, epochs run after the best, valid loss up while train loss down"
    tl, vl = np.array([e['train_loss'] for e in history]), np.array([e['valid_loss'] for e in history])
    return dict(gap_best=float(vl[best_epoch] - tl[best_epoch]), gap_last=float(vl[-1] - tl[-1]),
                epochs_after_best=int(len(history) - 1 - best_epoch),
                valid_up_train_down=bool(vl[-1] > vl[best_epoch] and tl[-1] < tl[best_epoch]))

def run_row(r) -> dict:
    "One flat row per record: config, best-epoch validation, test metrics, overfitting signals"
    best = r['history'][r['best_epoch']]
    return {**r['config'], 'key': r['key'], 'n_train': r['n_train'], 'best_epoch': r['best_epoch'] + 1,  # 1-based, as in the curves
            'epochs_run': len(r['history']), 'valid_macro_f1': best['macro_f1'], 'valid_loss': best['valid_loss'],
            'test_accuracy': r['test']['accuracy'], 'test_macro_f1': r['test']['macro_f1'], 'train_seconds': r['train_seconds'],
            **overfitting_signals(r['history'], r['best_epoch'])}

def mean_std(s: pd.Series, digits=3) -> str:
    "'mean ± std' over seeds (std only with two or more)"
    return f'{s.mean():.{digits}f}' + (f' ± {s.std(ddof=1):.{digits}f}' if len(s) > 1 else '')

def strategy_table(records) -> pd.DataFrame:
    "Per architecture, strategy and augmentation: test accuracy and macro-F1 (mean ± std over seeds), epochs, overfitting signals"
    df = pd.DataFrame([run_row(r) for r in records])
    g = df.groupby(['arch', 'strategy', 'augment'], sort=False)
    return pd.DataFrame({'seeds': g.size(), 'test_accuracy': g.test_accuracy.apply(mean_std),
                         'test_macro_f1': g.test_macro_f1.apply(mean_std), 'valid_macro_f1': g.valid_macro_f1.apply(mean_std),
                         'best_epoch': g.best_epoch.mean(), 'epochs_run': g.epochs_run.mean(),
                         'gap_best': g.gap_best.mean().round(3), 'gap_last': g.gap_last.mean().round(3),
                         'epochs_after_best': g.epochs_after_best.mean(), 'valid_up_train_down': g.valid_up_train_down.mean(),
                         'train_min': (g.train_seconds.mean()/60).round(1)}).reset_index()

def architecture_table(records, stats: pd.DataFrame | None = None) -> pd.DataFrame:
    "Per architecture: test accuracy and macro-F1 (mean ± std over seeds), joined with size and speed `stats` by arch"
    df = pd.DataFrame([{**run_row(r), 'family': r['arch']['family'], 'pretraining': r['arch']['pretraining']} for r in records])
    g = df.groupby('arch', sort=False)
    out = pd.DataFrame({'family': g.family.first(), 'pretraining': g.pretraining.first(), 'seeds': g.size(),
                        'test_accuracy': g.test_accuracy.apply(mean_std), 'test_macro_f1': g.test_macro_f1.apply(mean_std),
                        'valid_macro_f1': g.valid_macro_f1.apply(mean_std), 'train_min': (g.train_seconds.mean()/60).round(1)})
    out = out.reset_index()
    return out if stats is None else out.merge(stats, on='arch', how='left')

def _lrs(stages) -> str:
    "Peak learning rate per parameter group (early → head), one bracket per stage"
    return ' | '.join('[' + ', '.join(f'{lr:.1e}'.replace('e-0', 'e-') if lr else 'frozen' for lr, on in zip(s['peak_lr'], s.get('trainable_groups', [True]*9)))
                      + ']' for s in stages)

def hyperparameter_table(records) -> pd.DataFrame:
    "Every experiment's hyperparameters as they actually ran, read from its record"
    rows = []
    for r in records:
        c, h = r['config'], r['hyperparams']
        aug = h['augmentation']
        rows.append(dict(suite=r.get('suite', ''), arch=c['arch'], init='pretrained' if c['pretrained'] else 'scratch',
                         strategy=c['strategy'], augment=('aug_transforms' + (' + MixUp' if aug.get('mixup') else '')) if aug else 'none',
                         fraction=c['fraction'], seed=c['seed'], size=h['image_size'], head=h['head'], batch_size=h['batch_size'],
                         optimizer=f"{h['optimizer']} (" + ', '.join(f'{k}={v:.3g}' for k, v in h['opt_hypers'].items() if k != 'mom') + ')',
                         peak_lr_per_group=_lrs(h['stages']), stages=len(h['stages']),
                         schedule='one-cycle', epochs_max=h['epochs_max'], epochs_run=h['epochs_run'],
                         early_stopping=f"{h['early_stopping']['monitor']}, patience {h['early_stopping']['patience']}",
                         train_bn=h.get('train_bn'), precision=h['precision'], key=r['key']))
    return pd.DataFrame(rows)

def write_table(df: pd.DataFrame, path) -> Path:
    "Write `df` as CSV and Markdown (`path` without suffix)"
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path.with_suffix('.csv'), index=False)
    path.with_suffix('.md').write_text(df.to_markdown(index=False) + '\n')
    return path

# --- data efficiency ---------------------------------------------------------------------------------------------------

def efficiency_frame(records) -> pd.DataFrame:
    "One row per data-efficiency run: init, fraction, seed, training images (total, smallest class), test metrics"
    return pd.DataFrame([dict(init='pretrained' if r['config']['pretrained'] else 'scratch', fraction=r['config']['fraction'],
                              seed=r['config']['seed'], n_train=r['n_train'], n_min_class=min(r['n_train_per_class'].values()),
                              test_accuracy=r['test']['accuracy'], test_macro_f1=r['test']['macro_f1'],
                              lr=r['config']['lr'], epochs_max=r['config']['epochs'], patience=r['config']['patience'], strategy=r['config']['strategy'],
                              epochs_run=len(r['history'])) for r in records])

def paired_diff(a: pd.Series, b: pd.Series) -> tuple:
    "Mean of a - b over the seeds both have, with a 95 % t-interval (nan with fewer than two seeds)"
    from scipy import stats
    d = (a - b).dropna()
    if len(d) < 2: return float(d.mean()) if len(d) else np.nan, np.nan, np.nan
    half = stats.t.ppf(0.975, len(d) - 1)*d.std(ddof=1)/np.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)

def efficiency_table(records, metric='test_accuracy') -> pd.DataFrame:
    "Per init and fraction: images, accuracy and macro-F1 mean ± std over seeds; pretrained - scratch with a 95 % interval"
    df = efficiency_frame(records)
    rows = []
    for f in sorted(df.fraction.unique(), reverse=True):
        by = {i: df[(df.fraction == f) & (df.init == i)].set_index('seed') for i in ('pretrained', 'scratch')}
        for init, d in by.items():
            if d.empty: continue
            diff = {m: paired_diff(by['pretrained'][m], by['scratch'][m]) if init == 'pretrained' and not by['scratch'].empty
                    else (np.nan,)*3 for m in ('test_accuracy', 'test_macro_f1')}
            rows.append(dict(fraction=f, init=init, seeds=len(d), n_train=int(d.n_train.iloc[0]), n_min_class=int(d.n_min_class.iloc[0]),
                             lr=d.lr.iloc[0], epochs_max=int(d.epochs_max.iloc[0]), patience=int(d.patience.iloc[0]), strategy=d.strategy.iloc[0],
                             test_accuracy=mean_std(d.test_accuracy), test_macro_f1=mean_std(d.test_macro_f1),
                             acc_mean=d.test_accuracy.mean(), acc_std=d.test_accuracy.std(ddof=1),
                             f1_mean=d.test_macro_f1.mean(), f1_std=d.test_macro_f1.std(ddof=1),
                             **{f'{k}_diff{s}': v for k, m in (('acc', 'test_accuracy'), ('f1', 'test_macro_f1'))
                                for s, v in zip(('', '_lo95', '_hi95'), diff[m])}))
    return pd.DataFrame(rows)

def crossing_fraction(fractions, pretrained_means, level) -> float:
    "Smallest fraction where the pretrained mean reaches `level`, interpolated on log-fraction (nan: never; first: at most)"
    f, m = np.asarray(fractions, float), np.asarray(pretrained_means, float)
    order = np.argsort(f); f, m = f[order], m[order]
    hit = np.flatnonzero(m >= level)
    if not len(hit): return np.nan
    i = hit[0]
    if i == 0: return float(f[0])
    t = (level - m[i-1])/(m[i] - m[i-1])
    return float(np.exp(np.log(f[i-1]) + t*(np.log(f[i]) - np.log(f[i-1]))))

def crossing(records, metric='test_accuracy', n_boot=2000, seed=0) -> dict:
    "Fraction of training data at which pretrained matches scratch@100 %, with a 95 % bootstrap interval over seeds"
    df = efficiency_frame(records)
    pt, sc = df[df.init == 'pretrained'], df[(df.init == 'scratch') & (df.fraction == 1.0)]
    if pt.empty or sc.empty: return dict(metric=metric, fraction=np.nan, lo95=np.nan, hi95=np.nan, level=np.nan)
    fr = sorted(pt.fraction.unique())
    groups = [pt[pt.fraction == f][metric].values for f in fr]
    level = sc[metric].mean()
    est = crossing_fraction(fr, [g.mean() for g in groups], level)
    rng = np.random.default_rng(seed)
    boots = [crossing_fraction(fr, [rng.choice(g, len(g)).mean() for g in groups], rng.choice(sc[metric].values, len(sc)).mean())
             for _ in range(n_boot)]
    boots = np.array(boots)
    reached = np.isfinite(boots)
    lo, hi = (np.quantile(boots[reached], [0.025, 0.975]) if reached.any() else (np.nan, np.nan))
    return dict(metric=metric, level=float(level), fraction=est, lo95=float(lo), hi95=float(hi),
                boot_reached=float(reached.mean()), smallest_measured=float(fr[0]),
                at_most_smallest=bool(np.isfinite(est) and est == fr[0]))
