"Tables built from the one records DataFrame (`records.records_frame`): numeric mean and std columns, formatted only when written"
from __future__ import annotations
from pathlib import Path
import json, re
import numpy as np, pandas as pd
from .records import cell_key, CONFIG_ADDED
from .metrics import PRIMARY, columns

__all__ = ['METRICS', 'seed_summary', 'architecture_table', 'one_se_choice', 'grid_hours', 'grid_candidates', 'domain_gap_table', 'in_order', 'strategy_table', 'EFFICIENCY_ARMS', 'efficiency_arms', 'efficiency_table', 'paired_diff', 'restore_words',
           'precision_pairs', 'crossing_fraction', 'crossing', 'hyperparameter_table', 'merge_fractions', 'selection_table', 'formatted', 'write_table']

METRICS = (*columns('test'), f'valid_{PRIMARY}')  # what a seed summary averages, from the metric registry

def seed_summary(df: pd.DataFrame, by: list, metrics=METRICS) -> pd.DataFrame:
    "Per group of `by`: runs (seeds), mean and std of each metric, and mean epochs, signals and minutes"
    g = df.groupby(by, sort=False, dropna=False)
    out = g.size().rename('seeds').to_frame()
    for m in metrics: out[f'{m}_mean'], out[f'{m}_std'] = g[m].mean(), g[m].std(ddof=1)
    for c in ('best_epoch', 'epochs_run', 'epochs_max', 'gap_best', 'gap_last', 'epochs_after_best', 'min_valid_loss_epoch', 'valid_up_train_down'):
        if c in df: out[c] = g[c].mean()
    out['train_min'] = g.train_seconds.mean()/60
    return out.reset_index()

def architecture_table(df: pd.DataFrame, costs: pd.DataFrame | None = None) -> pd.DataFrame:
    "Per architecture: accuracy and macro-F1 (mean, std over seeds), joined with parameters, MB and latency by arch"
    out = seed_summary(df, ['arch', 'family', 'pretraining', 'size'])
    return out if costs is None else out.merge(costs, on='arch', how='left')

def in_order(df: pd.DataFrame, order: dict) -> pd.DataFrame:
    "`df` sorted by each column named in `order` along that column's list of values (values not listed go last)"
    rank = lambda c: c.map(lambda x: order[c.name].index(x) if x in order[c.name] else len(order[c.name]))
    return df.sort_values(list(order), key=rank, kind='stable')

def strategy_table(df: pd.DataFrame, order: dict | None = None) -> pd.DataFrame:
    "Per architecture, strategy and augmentation: metrics over seeds, epochs and overfitting signals, rows in `order` (see `in_order`)"
    out = seed_summary(df, ['arch', 'strategy', 'augment', 'size'])
    return in_order(out, order) if order else out

def one_se_choice(df: pd.DataFrame, by='arch', metric=f'valid_{PRIMARY}') -> str:
    """The one-standard-error rule: the smallest group (fewest parameters) whose mean `metric` is within one standard error
    (over seeds) of the best mean; with one seed per group, simply the best"""
    g = df.groupby(by).agg(m=(metric, 'mean'), se=(metric, 'sem'), params=('params', 'first'))
    top = g.m.idxmax()
    return g[g.m >= g.m[top] - (g.se[top] if np.isfinite(g.se[top]) else 0)].params.idxmin()

def grid_hours(df: pd.DataFrame, runs: int) -> pd.Series:
    "Per architecture: hours a grid of `runs` would take, from its median training time per run in `df` (robust to a busy machine)"
    return df.groupby('arch').train_seconds.median()*runs/3600

def grid_candidates(df: pd.DataFrame, limit_hours: float | None, runs: int) -> pd.DataFrame:
    "The runs of the architectures whose grid of `runs` fits `limit_hours` (all without a limit; the cheapest if none fits)"
    if not limit_hours: return df
    hours = grid_hours(df, runs)
    return df[df.arch.isin(hours[hours <= limit_hours].index if (hours <= limit_hours).any() else [hours.idxmin()])]

def domain_gap_table(probe: pd.DataFrame, finetuned: pd.DataFrame) -> pd.DataFrame:
    "Per architecture: a linear probe on its frozen features against the same backbone fine-tuned (metrics over seeds), and the gap"
    by = ['arch', 'family', 'pretraining', 'size']
    out = seed_summary(probe, by).merge(seed_summary(finetuned, by), on=by, suffixes=('_probe', '_finetuned'))
    for m in METRICS: out[f'{m}_gap'] = out[f'{m}_mean_finetuned'] - out[f'{m}_mean_probe']
    return out

def paired_diff(a: pd.Series, b: pd.Series) -> tuple:
    "Mean of a - b over the seeds both have, with a 95 % t-interval (nan with fewer than two seeds)"
    from scipy import stats
    d = (a - b).dropna()
    if len(d) < 2: return (float(d.mean()) if len(d) else np.nan), np.nan, np.nan
    half = stats.t.ppf(0.975, len(d) - 1)*d.std(ddof=1)/np.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)

def precision_pairs(df: pd.DataFrame) -> pd.DataFrame:
    """The runs whose configuration, seed included, differs only in precision, as the records say each ran: validation and
    test macro-F1 and training seconds per precision, one row per such twin (indexed by arch, size, epochs, seed and twin)"""
    df = df[df.train_path == 'end-to-end'].assign(precision=lambda d: d.record.map(lambda r: r.hyperparams['precision']),
                                                  twin=lambda d: d.record.map(lambda r: cell_key(r, without=('precision',))))
    both = df[df.groupby('twin').precision.transform('nunique') > 1]
    return both.pivot_table(index=['arch', 'size', 'epochs', 'seed', 'twin'], columns='precision',
                            values=['valid_macro_f1', 'test_macro_f1', 'train_seconds'])

EFFICIENCY_ARMS = {'fine-tuned': 'scratch', 'frozen probe': 'fine-tuned', 'scratch': None}  # arm -> the arm its gain is measured against

def efficiency_arms(df: pd.DataFrame) -> pd.DataFrame:
    "The data-efficiency runs with `init` naming their arm: pretrained and fine-tuned, pretrained frozen probe, or from scratch"
    return df.assign(init=np.where(df.init == 'scratch', 'scratch', np.where(df.strategy == 'feature-extraction', 'frozen probe', 'fine-tuned')))

def efficiency_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per arm and fraction: images, budget, metrics over seeds, and the gain over the arm's reference with a 95 % paired
    interval (fine-tuned - scratch; frozen probe - fine-tuned, i.e. what freezing costs)"""
    df = efficiency_arms(df)
    out = seed_summary(df, ['fraction', 'init', 'strategy', 'lr', 'epochs', 'patience'], columns('test'))
    n = df.groupby(['fraction', 'init']).agg(n_train=('n_train', 'first'), n_min_class=('n_min_class', 'first'))
    out = out.merge(n.reset_index(), on=['fraction', 'init'])
    out['reference'] = out.init.map(EFFICIENCY_ARMS)
    runs = lambda f, arm, m: df[(df.fraction == f) & (df.init == arm)].set_index('seed')[m]
    for m in columns('test'):
        diffs = [paired_diff(runs(f, i, m), runs(f, ref, m)) if ref else (np.nan,)*3 for f, i, ref in zip(out.fraction, out.init, out.reference)]
        for j, s in enumerate(('', '_lo95', '_hi95')): out[f'{m}_diff{s}'] = [d[j] for d in diffs]
    order = {a: i for i, a in enumerate(EFFICIENCY_ARMS)}
    return out.sort_values(['fraction', 'init'], ascending=[False, True], key=lambda c: c.map(order) if c.name == 'init' else c).reset_index(drop=True)

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

def seed_curves(df: pd.DataFrame, metric: str) -> tuple:
    "(fine-tuned: seed x fraction, scratch on all the data: per seed) of `metric`, over the seeds both arms have in full"
    df = efficiency_arms(df)
    pt = df[df.init == 'fine-tuned'].pivot_table(index='seed', columns='fraction', values=metric).dropna()
    sc = df[(df.init == 'scratch') & (df.fraction == 1.0)].set_index('seed')[metric]
    seeds = pt.index.intersection(sc.index)
    return pt.loc[seeds], sc.loc[seeds]

def seed_level(df: pd.DataFrame, a='fine-tuned', b='scratch', metric='test_macro_f1') -> dict:
    """Arm `a` minus arm `b` with the seed as the unit, since a seed's nested fractions share their images: per seed, the
    difference averaged over the fractions and its slope per halving of the data; each a 95 % t-interval over seeds"""
    arms = efficiency_arms(df)
    wide = lambda arm: arms[arms.init == arm].pivot_table(index='seed', columns='fraction', values=metric)
    gain = (wide(a) - wide(b)).dropna()  # seeds with every fraction in both arms
    if gain.empty: return dict(n=0, mean=(np.nan,)*3, slope=(np.nan,)*3)
    halvings = -np.log2(gain.columns.to_numpy(float))
    slope = pd.Series([np.polyfit(halvings, row, 1)[0] for row in gain.to_numpy()], index=gain.index)
    zero = lambda x: pd.Series(0., index=x.index)
    return dict(n=len(gain), mean=paired_diff(gain.mean(axis=1), zero(gain)), slope=paired_diff(slope, zero(slope)))

def crossing(df: pd.DataFrame, metric='test_accuracy', n_boot=2000, seed=0) -> dict:
    """Fraction of training data at which the fine-tuned pretrained model matches scratch@100 %, with a 95 % bootstrap interval
    that resamples whole seeds (a seed's curve and its scratch run together: its nested fractions are not independent)"""
    pt, sc = seed_curves(df, metric)
    if pt.empty: return dict(metric=metric, fraction=np.nan, lo95=np.nan, hi95=np.nan, level=np.nan)
    fr, curves, levels = list(pt.columns), pt.to_numpy(), sc.to_numpy()
    level = float(levels.mean())
    est = crossing_fraction(fr, curves.mean(0), level)
    draws = np.random.default_rng(seed).integers(0, len(levels), (n_boot, len(levels)))
    boots = np.array([crossing_fraction(fr, curves[d].mean(0), levels[d].mean()) for d in draws])
    reached = np.isfinite(boots)
    lo, hi = np.quantile(boots[reached], [0.025, 0.975]) if reached.any() else (np.nan, np.nan)
    return dict(metric=metric, level=level, fraction=est, lo95=float(lo), hi95=float(hi), boot_reached=float(reached.mean()),
                seeds=len(levels), smallest_measured=float(fr[0]), at_most_smallest=bool(np.isfinite(est) and est == fr[0]))

def sci(x: float) -> str:
    "A learning rate or divisor in short scientific notation: 2e-3, 4.6e-5, 1e5"
    m, e = f'{x:.1e}'.split('e')
    return f"{m.removesuffix('.0')}e{int(e)}"

def _lrs(lrs, trainable) -> str:
    "Peak learning rate per parameter group (early -> head), a dash where a group was frozen"
    return ' / '.join(sci(lr) if on else '–' for lr, on in zip(lrs, trainable))

def _monitored(monitor: str) -> tuple:
    "What a monitor watches on validation and which way is better, in words: ('valid loss', 'lowest'), ('valid macro-F1', 'highest')"
    if monitor == 'valid_loss': return 'valid loss', 'lowest'
    from .metrics import get_metric
    m = get_metric(monitor)
    return f'valid {m.label}', 'highest' if m.greater_is_better else 'lowest'

def restore_words(monitor: str) -> str:
    "The epoch a model-selection monitor restores, in words: 'last epoch', 'lowest valid loss', 'highest valid macro-F1'"
    return 'last epoch' if monitor == 'last' else ' '.join(reversed(_monitored(monitor)))

def _kept(runs: pd.DataFrame) -> dict:
    """The early stopping of one configuration's runs as their records say (on: its monitor, patience and how many runs
    stopped; off: the patience it would have had) and the epoch each restored, by which monitor, of the epochs it ran"""
    r0, same = runs.iloc[0], lambda xs: len(set(xs)) == 1
    kept = (f'{r0.best} of {r0.ran}' if same(runs.best) and same(runs.ran) else
            ', '.join(map(str, runs.best)) + ' of ' + (str(r0.ran) if same(runs.ran) else ', '.join(map(str, runs.ran))))
    if r0.stopper is None: stop = f'off (patience {r0.patience})'  # the epochs column beside it says whether it could have stopped
    else:
        stopped = int((runs.ran < r0.epochs).sum())
        stop = f"on: {_monitored(r0.stopper['monitor'])[0]}, patience {r0.stopper['patience']}; {stopped} of {len(runs)} stopped early"
    return dict(seeds=','.join(map(str, runs.seed)), restored=f'{restore_words(r0.monitor)}: {kept}', early_stopping=stop)

def hyperparameter_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct configuration (seeds merged): every setting as it ran, read from the records; early stopping as
    the records' hyperparams say (on/off, monitor, patience, runs stopped) and the epoch each seed restored (model selection
    monitor, of the epochs it ran)"""
    rows = []
    for r in df.drop_duplicates('key').record:  # a config reused by several suites ran once
        c, h = r.config, r.hyperparams
        rows.append(dict(dataset=c['dataset'], arch=c['arch'], init='pretrained' if c['pretrained'] else 'scratch', strategy=c['strategy'],
                         fraction=c['fraction'], size=h['image_size'], head=' + '.join(h['head_layers']), batch_size=h['batch_size'],
                         optimizer=f"{h['optimizer']} (" + ', '.join(f'{k} {v:.3g}' for k, v in h['opt_hypers'].items()) + ')',
                         schedule=' | '.join(f"stage {i}: {s['epochs_max']} ep, " + (
                             f"lr {_lrs(s['peak_lr'], s['trainable_groups'])}, warm-up {s['pct_start']:.0%}, div {s['div']:.3g} → {sci(s['div_final'])}" if 'peak_lr' in s else s['schedule']) for i, s in enumerate(h['stages'], 1)),
                         epochs=h['epochs_max'], monitor=h['model_selection']['monitor'], stopper=json.dumps(h['early_stopping']),
                         patience=(h['early_stopping'] or {}).get('patience', c['patience']),
                         augmentation=h['augmentation']['name'] + (' + mixup' if h['mixup'] else ''),
                         class_weights='yes' if h['class_weights'] else 'no', loss={**CONFIG_ADDED, **c}['loss'], precision=h['precision'], seed=c['seed'],
                         best=r.best_epoch, ran=h.get('epochs_run', len(r.history))))
    t = pd.DataFrame(rows)
    keys = [k for k in t.columns if k not in ('seed', 'best', 'ran')]
    out = [{**dict(zip(keys, k)), **_kept(runs.sort_values('seed').assign(stopper=lambda d: d.stopper.map(json.loads)))}
           for k, runs in t.groupby(keys, sort=False, dropna=False)]
    return pd.DataFrame(out).drop(columns=['monitor', 'patience', 'stopper'])

def merge_fractions(h: pd.DataFrame) -> pd.DataFrame:
    """`hyperparameter_table`'s rows that differ only in the training fraction and their epoch counts as one row: `fraction`
    and `epochs` become lists (largest fraction first); its schedule, early stopping and restored epoch are the first row's (the
    others differ from them only in epoch counts and in the epochs their runs restored)"""
    texts = ('schedule', 'early_stopping', 'restored')
    shape = dict(schedule=lambda t: re.sub(r'\d+(?= ep)', '#', t),  # each stage's epochs
                 early_stopping=lambda t: re.sub(r'(?<=off \(patience )\d+|\d+(?= of \d+ stopped)', '#', t),  # off: the patience it would have had (the epochs' or the preset's)
                 restored=lambda t: t.split(':')[0])  # the monitor; the epochs after it are outcomes
    key = h.drop(columns=['fraction', 'epochs', *texts]).astype(str).agg('|'.join, axis=1)
    for t in texts: key = key + '|' + h[t].astype(str).map(shape[t])
    groups = {k: g.sort_values('fraction', ascending=False, kind='stable') for k, g in h.groupby(key, sort=False)}  # in the table's order
    return pd.DataFrame([{**g.iloc[0].to_dict(), 'fraction': list(g.fraction), 'epochs': list(g.epochs)} for g in groups.values()])

def formatted(df: pd.DataFrame, digits=3) -> pd.DataFrame:
    "`df` for reading: each `<m>_mean`/`<m>_std` pair as one 'mean ± std' column, floats rounded, integers as integers"
    out = df.copy()
    for m in [c[:-5] for c in df.columns if c.endswith('_mean') and f'{c[:-5]}_std' in df]:
        out[m] = [f'{a:.{digits}f}' + (f' ± {s:.{digits}f}' if pd.notna(s) else '') for a, s in zip(df[f'{m}_mean'], df[f'{m}_std'])]
        out = out.drop(columns=[f'{m}_mean', f'{m}_std'])
        cols = list(out.columns); cols.insert(list(df.columns).index(f'{m}_mean'), cols.pop(cols.index(m))); out = out[cols]
    for c in out.select_dtypes('float').columns:
        out[c] = out[c].map(lambda v: '' if pd.isna(v) else f'{v:.0f}' if float(v).is_integer() and abs(v) >= 1 else f'{v:.{digits}g}' if abs(v) < 1e-2 else f'{v:.{digits}f}')
    return out

def write_table(df: pd.DataFrame, path) -> Path:
    "Write `df` as CSV (numbers as they are) and Markdown (formatted for reading); `path` without suffix"
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path.with_suffix('.csv'), index=False)
    path.with_suffix('.md').write_text(formatted(df).to_markdown(index=False) + '\n')
    return path

def selection_table(df: pd.DataFrame) -> pd.DataFrame:
    "Per run: the epoch each restore rule picks from the validation history, and the validation accuracy and macro-F1 there"
    rows = []
    for r in df.record:
        h = r.history
        picks = dict(valid_loss=min(h, key=lambda e: e['valid_loss']), macro_f1=max(h, key=lambda e: e['macro_f1']), last=h[-1])
        rows += [dict(key=r.key, arch=r.config['arch'], size=r.config['size'], rule=rule, epoch=e['epoch'], epochs=len(h),
                      valid_accuracy=e['accuracy'], valid_macro_f1=e['macro_f1']) for rule, e in picks.items()]
    return pd.DataFrame(rows)
