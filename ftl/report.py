"""The PDF report: the values its prose prints, gathered from every suite's `values` and the study-wide sections (the data,
hyperparameters, precision, budget), its claims checked; then typeset with typst from report/report.typ"""
from __future__ import annotations
import json, os, subprocess
from pathlib import Path
import numpy as np, pandas as pd
from .config import grid_runs
from .records import read_records, records_frame
from .strategies import describe_augmentation
from .runner import SUITES
from .prose import num, pct, table, title, words, lift_constant, claim, check_claims, MONITOR_NAMES
from . import tables

__all__ = ['values', 'build_report', 'repo_url', 'page_count', 'MAX_PAGES', 'TEMPLATE']

MAX_PAGES = 10
TEMPLATE = Path(__file__).resolve().parents[1]/'report'/'report.typ'  # prose written by a person; numbers come in as values

HYPER_NAMES = dict(wd='weight decay', sqr_mom='β2', mom='β1', eps='ε')

def optimizer_words(opt: str, hypers: dict) -> str:
    "An optimizer and its settings in words"
    return f"{opt} (" + ', '.join(f'{HYPER_NAMES.get(k, k)} {v:.3g}' for k, v in hypers.items()) + ')'

def _native_size(source) -> int:
    "The width of the dataset's images as stored (before ftl resizes them)"
    from PIL import Image
    files = source.info.get('files')
    if files is None: return source.images.shape[1]
    with Image.open(files[0]) as im: return im.size[0]

def hyper(v, raw, frames, lay, p):
    "The hyperparameters of every experiment"
    every = pd.concat([f for f in frames.values() if len(f)], ignore_index=True) if any(len(f) for f in frames.values()) else pd.DataFrame()
    if not len(every): return
    h = tables.hyperparameter_table(every)
    main = h.dataset.mode()[0]  # the study's dataset; a row on another (the binary headline) says which
    hyper = table(h, {'architecture': lambda x: title(x.arch), 'init': lambda x: x.init, 'strategy': lambda x: x.strategy,
                      'data': lambda x: pct(x.fraction, 0) + ('' if x.dataset == main else f", {x.dataset.removeprefix(main + '-')}"), 'px': lambda x: num(x['size']), 'epochs': lambda x: num(x.epochs),
                      'schedule per stage': lambda x: x.schedule.replace('stage ', 'S'),
                      'early stopping': lambda x: words(x.early_stopping), 'augmentation': lambda x: x.augmentation,
                      'batch': lambda x: num(x.batch_size), 'class weights': lambda x: x.class_weights, 'precision': lambda x: x.precision, 'seeds': lambda x: x.seeds})
    v['hyper'], v['hyper_same'] = lift_constant(hyper)
    norms = {}  # the statistics each backbone was pretrained with (timm's pretrained config), as the records applied them
    for r in every.record: norms.setdefault(json.dumps(r.normalization), set()).add(title(r.config['arch']))
    trio = lambda xs: num(xs[0]) if len(set(xs)) == 1 else ' / '.join(num(x) for x in xs)
    v['normalization'] = [f"mean {trio(n['mean'])}, standard deviation {trio(n['std'])} for {' and '.join(sorted(archs))}"
                          for n, archs in ((json.loads(k), a) for k, a in norms.items())]
    r0 = every.record.iloc[0].hyperparams
    v['hyper_common'] = dict(optimizer=optimizer_words(r0['optimizer'], r0['opt_hypers']), batch=num(h.batch_size.iloc[0]))

def precision(v, raw, frames, lay, p):
    "What bfloat16 autocast costs in accuracy and saves in time: the architecture cells trained both ways, seed by seed"
    folder = lay.results/'architectures'
    if not p.get('bf16_families') or not folder.exists(): return
    pairs = tables.precision_pairs(records_frame([r for r in read_records(folder) if not r.reused_from]))
    if not len(pairs) or 'bf16' not in pairs.columns.get_level_values(1): return
    other = [c for c in pairs.columns.get_level_values(1).unique() if c != 'bf16'][0]  # the precision compared against
    d, lo, hi = tables.paired_diff(pairs[('valid_macro_f1', 'bf16')], pairs[('valid_macro_f1', other)])
    dt, lot, hit = tables.paired_diff(pairs[('test_macro_f1', 'bf16')], pairs[('test_macro_f1', other)])
    speed = pairs[('train_seconds', other)].sum()/pairs[('train_seconds', 'bf16')].sum()
    v['bf16'] = dict(arch=title(pairs.index.get_level_values('arch')[0]), px=num(pairs.index.get_level_values('size')[0]),
                     seeds=num(len(pairs)), speedup=f'{speed:.1f}',
                     valid_diff=f'{d:+.3f} [{lo:+.3f}, {hi:+.3f}]', test_diff=f'{dt:+.3f} [{lot:+.3f}, {hit:+.3f}]')
    raw['bf16'] = dict(valid_ci=(lo, hi), speedup=speed)

def budget(v, raw, frames, lay, p):
    "What the study's runs cost: training (and feature) minutes per suite, each run counted once, as the records measured them"
    seen, minutes = set(), {}
    for name, f in frames.items():
        for r in (f.record if len(f) else []):
            if r.key in seen or r.reused_from: continue
            seen.add(r.key); minutes[name] = minutes.get(name, 0) + (r.train_seconds + (r.feature_seconds or 0))/60
    if not minutes: return
    raw['budget_hours'] = sum(minutes.values())/60
    v['budget'] = dict(hours=num(raw['budget_hours'], 1), runs=num(len(seen)),
                       per_suite=[f'{n} {m:.1f} min' if m < 10 else f'{n} {m:.0f} min' for n, m in minutes.items()])

@claim('bf16-within-noise', 'bf16 trained faster, and the 95 % interval of its paired validation macro-F1 difference to fp32 contains zero')
def _(v): b = v['raw']['bf16']; return b['speedup'] > 1 and b['valid_ci'][0] < 0 < b['valid_ci'][1]

def values(frames: dict, layout, source, presets: dict, preset: str, analysed=None) -> dict:
    """Everything the report prints, formatted, plus the raw numbers its claims check (`raw`), from the records (`frames`:
    complete suites), `layout`'s files and the record of the model the analysis studied (`analysed`, this preset's or None)"""
    v, raw = {}, {}
    counts, split = source.counts(), {s: int((source.split == s).sum()) for s in ('train', 'valid', 'test')}
    v['data'] = dict(n=num(len(source.labels)), classes=source.classes, counts={k: num(c) for k, c in counts.items()},
                     split={k: num(n) for k, n in split.items()}, valid_counts={k: num(c) for k, c in source.counts('valid').items()}, split_fracs=[pct(f, 0) for f in source.info.get('split_fracs', ())],
                     native_px=num(_native_size(source)), mono=num(int((source.info.get('cell_type', np.array([])) == 'mono').sum())),
                     poly=num(int((source.info.get('cell_type', np.array([])) == 'poly').sum())))
    p = {**presets[preset], 'name': preset, 'study_size': presets.get('study', presets[preset])['size'], 'analysed': analysed}  # the study preset's size, chosen from the resolution runs
    v['preset'] = dict(name=preset, size=num(p['size']), epochs=num(p['epochs']), patience=num(p['patience']), bs=num(p['bs']),
                       seeds=num(len(p['seeds'])), augment_arms=list(p['augment_arms']),
                       augment_words=[f"{a} ({describe_augmentation(a)['description']})" for a in p['augment_arms'] if a != 'none'],
                       restore=MONITOR_NAMES[p.get('monitor', 'valid_loss')], whole=p['patience'] >= p['epochs'], first_look=preset == 'quick')
    for s in SUITES.values():
        if s.values: s.values(v, raw, frames, layout, p)
    for section in (hyper, precision, budget): section(v, raw, frames, layout, p)
    v['raw'] = raw
    v['claims'] = check_claims(v)
    return v

def repo_url() -> str:
    "The repository link for the title page: $FTL_REPO_URL, else the git remote, else empty"
    if os.environ.get('FTL_REPO_URL'): return os.environ['FTL_REPO_URL']
    try: return subprocess.run(['git', 'remote', 'get-url', 'origin'], capture_output=True, text=True, cwd=TEMPLATE.parent).stdout.strip()
    except OSError: return ''

def page_count(pdf) -> int:
    from pypdf import PdfReader
    return len(PdfReader(str(pdf)).pages)

def build_report(values: dict, figures_dir, out_dir) -> Path:
    "Typeset the report from `values` (findings.values) and the figures; refuse (never truncate) a report over MAX_PAGES pages"
    import typst
    out_dir = Path(out_dir); out_dir.mkdir(parents=True, exist_ok=True)
    vals = out_dir/'values.json'
    vals.write_text(json.dumps(values, indent=1, default=lambda x: x.item() if hasattr(x, 'item') else str(x)))
    pdf = out_dir/'report.pdf'
    typst.compile(str(TEMPLATE), output=str(pdf), root='/',
                  sys_inputs=dict(values=str(vals.resolve()), figures=str(Path(figures_dir).resolve()), repo=repo_url()))
    if (n := page_count(pdf)) > MAX_PAGES: raise RuntimeError(f"The report has {n} pages, more than {MAX_PAGES}: shorten report/report.typ")
    return pdf
