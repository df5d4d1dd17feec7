"""The runner: what a command asks for (`Study`), where it writes (`Layout`), the registry of suites (`register`, `SUITES`,
filled by the modules of `ftl.studies` in the study's order) and the loop that turns a suite's configs into stored records"""
from __future__ import annotations
import math, time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable
from .errors import UserError, ConfigError
from .models import get_arch
from .data import resolved
from .config import Config, PRESETS, preset_config
from .train import run_config
from .records import (Record, CorruptRecord, record_path, save_record, load_record, read_records, find_twin, set_aside,
                      check_writable, records_frame)
from . import tables
from .metrics import METRICS
from .plan import estimate, host_id, Progress, keep_plan

__all__ = ['Layout', 'REPORTED_PRESET', 'Study', 'Suite', 'SUITES', 'register', 'run_suite', 'sequential', 'pending_configs',
           'suite_records', 'complete_records', 'shown_records', 'write_outputs', 'run', 'plan']

REPORTED_PRESET = 'study'  # the preset whose tables, figures and report are the committed study (at the top level)

@dataclass(frozen=True)
class Layout:
    "Where a study writes: records (one folder per suite) and benchmarks; the preset's tables and analysis; figures, learners, report"
    results: Path
    tables: Path
    figures: Path
    models: Path
    report: Path
    @classmethod
    def of(cls, results='results', preset=REPORTED_PRESET) -> 'Layout':
        """The committed study's layout for `results` (another preset's tables, figures and report in a subfolder named after
        it, so a quick look never rewrites the study's), or everything inside another results folder (a trial)"""
        r = Path(results)
        if r != Path('results'): return cls(r, r, r/'figures', r/'models', r/'report')
        sub = Path() if preset == REPORTED_PRESET else Path(preset)
        return cls(r, r/sub, Path('figures')/sub, Path('models'), Path('report')/sub)

@dataclass(frozen=True)
class Study:
    "What a command asks for: dataset, architecture, preset, where to write, and any fields fixed for every run"
    dataset: str = 'elpv'
    arch: str | None = None
    preset: str = 'quick'
    online: bool = False
    results: str = 'results'
    fixed: dict = field(default_factory=dict)  # Config fields the user set (size, epochs, bs, strategy, fraction, seed, augment, ...)
    workers: int | None = None   # run each suite's pending configs as Ray tasks on this many local workers
    address: str | None = None   # or on the Ray cluster at this address ('auto', host:port)
    card: str | None = None      # the dataset card's path, when it is not the dataset's own
    def __post_init__(self):
        if self.preset not in PRESETS: raise ConfigError(f"Unknown preset {self.preset!r}; choose from {list(PRESETS)}")
    @property
    def layout(self) -> Layout: return Layout.of(self.results, self.preset)
    @property
    def settings(self) -> dict: return PRESETS[self.preset]
    @property
    def seeds(self) -> tuple: return (self.fixed['seed'],) if 'seed' in self.fixed else self.settings['seeds']
    def config(self, **kw) -> Config:
        "A config of this study: the preset, then the suite's fields `kw`, then the user's fixed fields (a ViT's size rounded to its patch)"
        fields = {'dataset': self.dataset, 'size': self.settings['size'], **kw, **self.fixed}
        m = get_arch(fields.get('arch', Config.arch)).size_multiple
        return preset_config(self.preset, **{**fields, 'size': max(m, int(round(fields['size']/m))*m)})

@dataclass(frozen=True)
class Suite:
    "One study: a training suite has `configs`; a study of finished work (analysis, benchmark, report) has `study`"
    name: str
    doc: str
    configs: Callable | None = None   # Study -> [Config]
    outputs: Callable | None = None   # (Study, records DataFrame) -> None: its tables and figures
    study: Callable | None = None     # Study -> None
    export: bool = False              # keep each end-to-end run's learner (models/<key>.pkl) for the analysis
    values: Callable | None = None    # (v, raw, frames, layout, preset) -> None: what its report section prints, and its claims' inputs
    order: float = 0                  # its place in the study: a suite runs (and its section stands) after those it reads
    title: str = ''                   # its section's heading in the report (report/sections/<name>.typ places it)
    earlier: Callable | None = None   # Study -> records of an earlier, complete definition its section shows while it is incomplete

SUITES: dict = {}  # name -> Suite, sorted by `order`: the study's order, which `--suite all` runs and the report reads

def register(name, kind='configs', order=0, **kw):
    """Decorator: register the function as suite `name`'s configs (or, with kind='study', as its study) at place `order`
    in the study; its docstring is the help"""
    def deco(fn):
        SUITES[name] = Suite(name, ' '.join(fn.__doc__.split()), **{kind: fn}, order=order, **kw)
        ranked = sorted(SUITES.values(), key=lambda s: s.order)
        SUITES.clear(); SUITES.update((s.name, s) for s in ranked)
        return fn
    return deco

def sequential(configs, models, done):
    "Run `configs` one after another in this process, handing each record to `done` as it finishes"
    for cfg in configs: done(cfg, run_config(cfg, models))

def summary_line(rec: Record, how: str):
    "One line per finished, skipped or reused run"
    print(f"{how:5s} {rec.key}: test " + ' '.join(f"{m.label} {rec.test[m.name]:.3f}" for m in METRICS.values() if m.name in rec.test)
          + f" best epoch {rec.best_epoch}/{len(rec.history)} {rec.train_seconds:.0f}s", flush=True)

def pending_configs(suite: Suite, configs, results, report=summary_line) -> list:
    "The configs of `suite` without a record; identical configs of other suites are copied, corrupt records set aside"
    todo = []
    for cfg in configs:
        path = record_path(results, suite.name, cfg.key())
        if path.exists():
            try: report(load_record(path), 'skip'); continue
            except CorruptRecord as e: print(f"corrupt record moved to {set_aside(path)}, rerunning: {e}", flush=True)
        twin = find_twin(results, cfg.key(), exclude=path)
        if twin is not None:
            try:
                rec = replace(load_record(twin), reused_from=f'{twin.parent.name}/{twin.name}')
                save_record(rec, path); report(rec, 'reuse'); continue
            except CorruptRecord: pass
        todo.append(cfg)
    return todo

def run_suite(suite: Suite, study: Study, executor=None) -> list:
    "Run every config of `suite` that has no record yet (resumable), write each record as it finishes, then the suite's outputs"
    lay = study.layout
    configs = list({c.key(): c for c in suite.configs(study)}.values())
    check_writable(lay.results/suite.name)  # before any training, not after an hour
    if suite.export: check_writable(lay.models)
    todo = pending_configs(suite, configs, lay.results)
    print(f"suite {suite.name}: {len(configs)} runs, {len(todo)} to train -> {lay.results/suite.name}/", flush=True)
    progress = Progress(estimate(todo, lay.results, measure=False)[0], len(configs) - len(todo), len(configs)) if todo else None  # no timing runs here
    def done(cfg, rec):
        save_record(rec, record_path(lay.results, suite.name, cfg.key())); summary_line(rec, 'ran')
        print(f"      {suite.name}: {progress(cfg)}", flush=True)
    (executor or _executor(study, suite))(todo, lay.models if suite.export else None, done)
    write_outputs(suite, study)
    return suite_records(suite, study)

def _executor(study: Study, suite: Suite):
    "Sequential in this process, or Ray tasks when the study asks for workers or a cluster (Ray is imported only then)"
    if not (study.workers or study.address): return sequential
    from .distributed import ray_executor
    return ray_executor(study.workers, study.address, results=study.layout.results, suite=suite.name)

def suite_records(suite: Suite | str, study: Study) -> list:
    "The stored records of the suite's configs for `study` (other presets' records in the same folder are not its own)"
    suite = SUITES[suite] if isinstance(suite, str) else suite
    folder = study.layout.results/suite.name
    if not folder.exists(): return []
    try: mine = {record_path(study.layout.results, suite.name, c.key()) for c in suite.configs(study)}
    except UserError: return []  # its configs depend on a suite that has not run yet
    return [r for r in read_records(folder) if Path(r.path) in mine]

def complete_records(suite: str, study: Study, recs=None) -> list:
    """The suite's records for `study` (`recs`, when already read) if every one of its runs has finished, else none (a
    report never shows half a suite)"""
    recs = suite_records(suite, study) if recs is None else recs
    want = len({c.key() for c in SUITES[suite].configs(study)}) if recs else 0
    if len(recs) < want: print(f"{suite}: {len(recs)} of {want} runs finished; left out until the suite completes", flush=True)
    return recs if len(recs) >= want else []

def shown_records(suite: str, study: Study, recs=None) -> tuple:
    """(records, earlier): the suite's records once all its runs have finished (`complete_records`), else the complete
    records of its earlier definition where it keeps one (`Suite.earlier`, shown until it completes), else none"""
    done = complete_records(suite, study, recs)
    if done or not SUITES[suite].earlier: return done, False
    old = SUITES[suite].earlier(study)
    return old, bool(old)

def write_outputs(suite: Suite, study: Study):
    """The suite's tables and figures from its records (those its report section shows, when it keeps an earlier
    definition), and the hyperparameter table of every experiment"""
    lay = study.layout
    def tabled(s): recs = suite_records(s, study); return (s.earlier and shown_records(s.name, study, recs)[0]) or recs
    recs = tabled(suite)
    if recs and suite.outputs: suite.outputs(study, records_frame(recs))
    every = [r for s in SUITES.values() if s.configs for r in tabled(s)]
    if every: tables.write_table(tables.hyperparameter_table(records_frame(every)), lay.tables/'hyperparameters')

def run(name: str, study: Study):
    "Run suite `name` (a training suite or a study of finished work), its dataset resolved once for the whole suite"
    suite = SUITES[name]
    with resolved(): return run_suite(suite, study) if suite.configs else suite.study(study)

def _planned_configs(suite: Suite, study: Study, slowest_of=()) -> tuple:
    """(configs, note): the suite's configs now; where its backbone waits on runs not yet made (`slowest_of`, the candidates),
    the configs on each candidate, of which the plan counts the slowest"""
    cfgs = list({c.key(): c for c in suite.configs(study)}.values())
    if not slowest_of or 'arch' in study.fixed or len({c.arch for c in cfgs}) != 1: return [cfgs], ''
    return ([list({c.key(): c for c in suite.configs(replace(study, fixed={**study.fixed, 'arch': a}))}.values()) for a in slowest_of],
            'its backbone is chosen by the architectures runs still to come: counted on the slowest candidate')

def plan(names, study: Study) -> float:
    "Print each pending run of suites `names` with its estimated minutes on this host, each suite's total and the grand total; trains nothing"
    with resolved(): return _plan(names, study)

def _plan(names, study: Study) -> float:
    "`plan`, inside one dataset resolution"
    import os
    lay, planned, total, rows, host = study.layout, set(), 0., [], host_id()
    print(f"plan for {study.dataset}, preset {study.preset}, on this host: {host}")
    if os.getloadavg()[0] > (os.cpu_count() or 1)/2:
        print(f"note: the machine is busy (load {os.getloadavg()[0]:.1f}): timings measured now run slower than on an idle machine")
    candidates, trusts = (), []
    for name in names:
        suite = SUITES[name]
        if not suite.configs: print(f"\n{name}: no training (it works on finished runs)"); continue
        try: grids, note = _planned_configs(suite, study, candidates)
        except UserError as e: print(f"\n{name}: waits for earlier runs ({e})"); continue
        options = []
        for cfgs in grids:
            todo = [c for c in pending_configs(suite, cfgs, lay.results, report=lambda *a: None) if c.key() not in planned]
            ests, trust = estimate(todo, lay.results) if todo else ([], None)
            options.append((sum(e.seconds for e in ests), ests, trust, len(cfgs)))
        secs, ests, trust, n = max(options, key=lambda o: o[0])
        if name == 'architectures' and ests: candidates = tuple(dict.fromkeys(e.cfg.arch for e in ests))
        planned |= {e.cfg.key() for e in ests}
        print(f"\n{name}: {n} runs, {len(ests)} to train, about {secs/60:.0f} min" + (f" ({note})" if note and ests else ''))
        for e in ests: print(f"  {e.seconds/60:7.1f} min  {e.cfg.key()}" + (f"  (x{e.factor:.2f}: this host's records"
                             + ('' if e.own else ' of other settings') + ')' if e.factor != 1 else ''))
        total += secs
        rows += [(name, e.cfg.key(), e.seconds/60, host, time.strftime('%Y-%m-%d')) for e in ests if math.isfinite(e.seconds)]
        if trust and trust['n']: trusts.append(trust)
    print(f"\ntotal: about {total/60:.0f} min ({total/3600:.1f} h) of training on this host")
    for t in trusts[-1:]:
        print(f"trust: over {t['n']} records of this host in the same settings, the uncorrected estimate was {t['median']:.2f}x "
              f"their time (range {t['lo']:.2f}-{t['hi']:.2f}); estimates in those settings are scaled by it")
    if not trusts: print("trust: no records of this host in these settings to check the estimate against")
    if rows: print(f"each run's first estimate kept in {keep_plan(lay.results, rows)} (the report sets it beside the time it took)")
    return total
