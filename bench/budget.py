"""What a study's training has cost since a revision, and what its unfinished suites would still cost.

    python bench/budget.py [REV] [--preset study]

Spent: the training (and feature) seconds of every record first committed after REV (default: the whole history), per
suite, each run counted once (a record copied from another suite is not new training). Pending: every config of the
preset's training suites without a record, with hours estimated from the finished record of the same architecture, size
and precision that was committed last (seconds per training image and epoch, times the pending run's images and epochs;
an early stop makes it shorter). The estimate carries that record's host speed: bench/bf16.py says how far this CPU is
from it (bf16 on a CPU without AMX is about 4x slower than with it)."""
import subprocess, sys
from pathlib import Path
import pandas as pd
import ftl.studies
from ftl.runner import SUITES, Study
from ftl.records import read_records, record_path, find_twin

def first_added(since=None) -> dict:
    "record path -> the commit time that first added it, for records added after `since` (every record when None)"
    span = [f'{since}..HEAD'] if since else []
    out = subprocess.run(['git', 'log', '--reverse', '--diff-filter=A', '--name-only', '--format=@%aI', *span, '--', 'results'],
                         capture_output=True, text=True, check=True).stdout
    added, when = {}, None
    for line in out.splitlines():
        if line.startswith('@'): when = line[1:]
        elif line.endswith('.json'): added.setdefault(line, when)
    return added

def spent(since=None) -> pd.DataFrame:
    "One row per new run committed after `since`: suite, key, hours, when"
    added, rows = first_added(since), []
    for path, when in added.items():
        p = Path(path)
        if not p.exists() or p.parent.parent != Path('results'): continue
        recs = read_records(p.parent)
        r = next((r for r in recs if Path(r.path) == p), None)
        if r is None or r.reused_from: continue
        rows.append(dict(suite=p.parent.name, key=r.key, hours=(r.train_seconds + (r.feature_seconds or 0))/3600, when=when))
    return pd.DataFrame(rows).drop_duplicates('key') if rows else pd.DataFrame(columns=['suite', 'key', 'hours', 'when'])

def pending(study: Study) -> pd.DataFrame:
    "One row per config of the study's training suites without a record (nor a twin to copy), with its estimated hours"
    results = Path(study.results)
    done = [r for r in read_records(results) if not r.reused_from and r.train_seconds]
    added = first_added()
    when = lambda r: added.get(str(r.path), '')  # its first commit's time: the last committed is today's host speed
    full = max((r.n_train for r in done if r.config['dataset'] == study.dataset and r.config['fraction'] == 1), default=0)
    rows = []
    for s in SUITES.values():
        if not s.configs: continue
        try: cfgs = {c.key(): c for c in s.configs(study)}.values()
        except Exception as e: rows.append(dict(suite=s.name, key=f'(waits: {str(e)[:60]})', hours=float('nan'), like='')); continue
        for c in cfgs:
            if record_path(results, s.name, c.key()).exists() or find_twin(results, c.key()) is not None: continue
            same = [r for r in done if (r.config['arch'], r.config['size'], r.config.get('precision')) == (c.arch, c.size, c.precision)]
            ref = max(same, key=when, default=None)
            per = ref.train_seconds/(ref.n_train*len(ref.history)) if ref else float('nan')
            rows.append(dict(suite=s.name, key=c.key(), hours=per*full*c.fraction*c.epochs/3600, like=ref.key if ref else '—'))
    return pd.DataFrame(rows, columns=['suite', 'key', 'hours', 'like'])

if __name__ == '__main__':
    args = [a for a in sys.argv[1:] if not a.startswith('--')]
    preset = sys.argv[sys.argv.index('--preset') + 1] if '--preset' in sys.argv else 'study'
    if preset in args: args.remove(preset)
    since = args[0] if args else None
    s = spent(since)
    print(f"spent since {since or 'the first commit'}: {s.hours.sum():.2f} h in {len(s)} runs")
    if len(s): print(s.groupby('suite').hours.agg(['count', 'sum']).round(2).to_string())
    p = pending(Study(preset=preset))
    print(f"\npending ({preset} preset): {len(p)} runs, about {p.hours.sum():.1f} h at the reference records' host speed")
    if len(p): print(p.groupby('suite').agg(runs=('key', 'count'), hours=('hours', 'sum')).round(1).to_string())
    if len(p): print('\n' + p.round(2).to_string(index=False, max_colwidth=70))
