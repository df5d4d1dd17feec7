"""Suites: every study described once (what it runs, whether it keeps its learners, the tables and figures it writes),
in one registry that the command line reads, and the runner that turns a suite's configs into stored records"""
from __future__ import annotations
import json, shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable
import numpy as np
from .errors import UserError, ConfigError
from .models import OFFLINE, ONLINE, get_arch
from .strategies import STRATEGIES
from .train import Config, PRESETS, preset_config, grid_runs, strategy_order, train, export
from .records import (Record, CorruptRecord, record_path, save_record, load_record, read_records, find_twin, set_aside,
                      check_writable, cell_key, records_frame)
from . import tables, figures

__all__ = ['Layout', 'REPORTED_PRESET', 'Study', 'Suite', 'SUITES', 'register', 'run_suite', 'run_config', 'sequential', 'best_arch', 'best_record',
           'budget_factor', 'FRACTIONS', 'DEFAULT_ARCH']

DEFAULT_ARCH = 'efficientnet_lite0'
FRACTIONS = (1.0, 0.5, 0.25, 0.1, 0.05)

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
    def __post_init__(self):
        if self.preset not in PRESETS: raise ConfigError(f"Unknown preset {self.preset!r}; choose from {list(PRESETS)}")
    @property
    def layout(self) -> Layout: return Layout.of(self.results, self.preset)
    @property
    def seeds(self) -> tuple: return (self.fixed['seed'],) if 'seed' in self.fixed else PRESETS[self.preset]['seeds']
    def config(self, **kw) -> Config:
        "A config of this study: the preset, then the suite's fields `kw`, then the user's fixed fields (a ViT's size rounded to its patch)"
        fields = {'dataset': self.dataset, **{k: v for k, v in PRESETS[self.preset].items() if k == 'size'}, **kw, **self.fixed}
        m = get_arch(fields.get('arch', DEFAULT_ARCH)).size_multiple
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

SUITES: dict = {}  # name -> Suite, in the order of the study

def register(name, kind='configs', **kw):
    "Decorator: register the function as suite `name`'s configs (or, with kind='study', as its study); its docstring is the help"
    def deco(fn):
        SUITES[name] = Suite(name, fn.__doc__.splitlines()[0], **{kind: fn}, **kw)
        return fn
    return deco

# --- the runner ----------------------------------------------------------------------------------------------------------

def run_config(cfg: Config, models=None) -> Record:
    "Train one config; keep its learner under `models` when given (end-to-end runs only: a cached-feature probe has no backbone)"
    learn, rec = train(cfg)
    if models is not None and rec.train_path == 'end-to-end': export(learn, Path(models)/f'{cfg.key()}.pkl')
    return rec

def sequential(configs, models, done):
    "Run `configs` one after another in this process, handing each record to `done` as it finishes"
    for cfg in configs: done(cfg, run_config(cfg, models))

def summary_line(rec: Record, how: str):
    "One line per finished, skipped or reused run"
    print(f"{how:5s} {rec.key}: test acc {rec.test['accuracy']:.3f} macro-F1 {rec.test['macro_f1']:.3f} "
          f"best epoch {rec.best_epoch}/{len(rec.history)} {rec.train_seconds:.0f}s", flush=True)

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
    def done(cfg, rec):
        save_record(rec, record_path(lay.results, suite.name, cfg.key())); summary_line(rec, 'ran')
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

def write_outputs(suite: Suite, study: Study):
    "The suite's tables and figures from its records, and the hyperparameter table of every experiment"
    lay = study.layout
    recs = suite_records(suite, study)
    if recs and suite.outputs: suite.outputs(study, records_frame(recs))
    every = [r for s in SUITES.values() if s.configs for r in suite_records(s, study)]
    if every: tables.write_table(tables.hyperparameter_table(records_frame(every)), lay.tables/'hyperparameters')

# --- choices made on validation, from earlier suites ----------------------------------------------------------------------

def best_arch(study: Study, default=DEFAULT_ARCH) -> str:
    """The architecture the grid suites (strategies, data efficiency) build on (the default before any architectures run):
    among those whose grid fits the preset's budget, the smallest (fewest parameters) whose mean validation macro-F1 is
    within one standard error of the best mean (the one-standard-error rule); with one seed per architecture, the best"""
    df = records_frame(suite_records('architectures', study))
    if not len(df): return default
    return tables.one_se_choice(tables.grid_candidates(df, PRESETS[study.preset].get('grid_hours'), grid_runs(study.preset)))

def best_record(study: Study, suites=('architectures', 'strategies')) -> Record:
    """The best cell of the study's `suites` (a configuration over its seeds) by mean validation macro-F1 at the restored
    epoch, chosen without the test set; its run with the lowest seed"""
    recs = {r.key: r for s in suites for r in suite_records(s, study)}.values()  # a config two suites share counts once
    if not recs: raise UserError(f"No records of {list(suites)} under {study.results} for preset {study.preset!r}: run those suites first")
    cells = {}
    for r in recs: cells.setdefault(cell_key(r), []).append(r)
    best = max(cells.values(), key=lambda rs: (np.mean([r.best['macro_f1'] for r in rs]), min(r.key for r in rs)))
    return min(best, key=lambda r: r.config['seed'])

def _title(r: Record) -> str:
    "A cell's panel title, in words"
    c = r.config
    return f"{get_arch(c['arch']).title}, {c['strategy']}, aug {c['augment']}"

# --- the suites, in the order of the study --------------------------------------------------------------------------------

@register('smoke')
def smoke(study: Study) -> list:
    "One real pretrained run on the default dataset (the fields given on the command line apply)"
    return [study.config(arch=study.arch or DEFAULT_ARCH)]

def _architectures_outputs(study, df):
    lay = study.layout
    from .benchmark import cost_table
    tables.write_table(tables.architecture_table(df, cost_table(lay.results/'benchmark')), lay.tables/'architectures_table')
    figures.training_curves(sorted(df.record, key=lambda r: (r.config['arch'], r.config['seed'])), _title,
                            lay.figures/'curves_architectures', 'Architectures: fine-tune, 100 % data', ncols=3)

@register('architectures', export=True, outputs=_architectures_outputs)
def architectures(study: Study) -> list:
    "Which pretrained backbone: every architecture of the active set (offline packaged weights, or --online the hub), fine-tune"
    archs = [study.arch] if study.arch else [a.name for a in (ONLINE if study.online else OFFLINE)]
    return [study.config(arch=a, seed=s) for a in archs for s in study.seeds]

def _domain_gap_outputs(study, df):
    finetuned = records_frame(suite_records('architectures', study))
    if len(finetuned): tables.write_table(tables.domain_gap_table(df, finetuned), study.layout.tables/'domain_gap_table')

@register('domain-gap', outputs=_domain_gap_outputs)
def domain_gap(study: Study) -> list:
    "How far the domain is from each backbone's pretraining: a linear probe on its frozen features (no augmentation), every seed"
    return [replace(c, strategy='feature-extraction', augment='none', precision=Config.precision).validate()  # features are cached in fp32
            for c in architectures(study)]

def _strategies_outputs(study, df):
    lay = study.layout
    main = df.arch.value_counts().index[0]  # the suite's architecture; other rows: runs of an earlier choice
    df = tables.in_order(df.assign(other=df.arch != main), dict(other=[False], arch=sorted(df.arch.unique()), **strategy_order(PRESETS[study.preset]['augment_arms']), seed=sorted(df.seed.unique())))
    tables.write_table(tables.strategy_table(df), lay.tables/'strategies_table')
    figures.training_curves(list(df.record), _title, lay.figures/'curves_strategies', f"Strategies on {get_arch(main).title}", ncols=5)

@register('strategies', export=True, outputs=_strategies_outputs)
def strategies(study: Study) -> list:
    "Which way of fine-tuning: every strategy, augmentation off and on, on the best (or given) architecture at 100 % data"
    arch = study.arch or best_arch(study)
    return [study.config(arch=arch, strategy=st, augment=aug, seed=s)
            for st in STRATEGIES for aug in PRESETS[study.preset]['augment_arms'] for s in study.seeds]

def budget_factor(fraction, min_share=0.25) -> float:
    "Epoch multiplier giving a run on `fraction` of the data at least `min_share` of the full-data optimizer steps"
    return max(1.0, min_share/fraction)

DATA_EFFICIENCY = dict(seeds=(0, 1, 2), scratch_lr=1e-2, scratch_epochs_factor=1.5)

def _data_efficiency_outputs(study, df):
    lay = study.layout
    from .evaluate import majority_baseline
    tab = tables.efficiency_table(df)
    tables.write_table(tab, lay.tables/'data_efficiency_table')
    cross = {m: tables.crossing(df, m) for m in ('test_accuracy', 'test_macro_f1')}
    cross['majority_baseline'] = majority_baseline(df.record.iloc[0].test)  # the same fixed test split for every run
    (lay.tables/'data_efficiency_crossing.json').write_text(json.dumps(cross, indent=1))
    figures.efficiency_plot(tab, path=lay.figures/'data_efficiency', baseline=cross['majority_baseline'],
                            title=f"{get_arch(df.arch.iloc[0]).title} on {df.dataset.iloc[0]}: fine-tuned, frozen probe and from scratch")

@register('data-efficiency', outputs=_data_efficiency_outputs)
def data_efficiency(study: Study) -> list:
    """How much labelled data: pretrained (fine-tune), a frozen-feature probe and from scratch at nested stratified fractions, 3 seeds.
    Small fractions get more epochs so that every run has at least a quarter of the full-data steps. Every arm trains its
    whole one-cycle budget (patience = epochs) and restores its epoch by the preset's rule; scratch has its own lr and budget"""
    arch = study.arch or best_arch(study)
    base = study.config(arch=arch)
    def arms(f):
        pt, sc = (int(round(base.epochs*k*budget_factor(f))) for k in (1, DATA_EFFICIENCY['scratch_epochs_factor']))
        return [dict(pretrained=True, strategy='fine-tune', epochs=pt, patience=pt),
                dict(pretrained=True, strategy='feature-extraction', augment='none', epochs=pt, patience=pt),  # when is freezing enough?
                dict(pretrained=False, strategy='full-finetune', lr=DATA_EFFICIENCY['scratch_lr'], epochs=sc, patience=sc)]
    seeds = study.seeds if 'seed' in study.fixed else DATA_EFFICIENCY['seeds']
    return [replace(base, **arm, fraction=f, seed=s).validate() for f in FRACTIONS for s in seeds for arm in arms(f)]

RESOLUTION = dict(sizes=(84, 128, 160, 224), epochs=16, augment='dihedral')  # the study's domain augmentation; one seed

def _resolution_outputs(study, df):
    lay = study.layout
    tab = tables.seed_summary(df, ['arch', 'strategy', 'augment', 'size'], ('valid_accuracy', 'valid_macro_f1', 'test_accuracy', 'test_macro_f1'))
    tables.write_table(tab.sort_values('size'), lay.tables/'resolution_table')
    tables.write_table(tables.selection_table(df), lay.tables/'selection_rules')
    figures.metric_vs(tab.sort_values('size'), 'size', ['valid_macro_f1_mean', 'test_macro_f1_mean', 'valid_accuracy_mean', 'test_accuracy_mean'],
                      lay.figures/'resolution', f"{get_arch(df.arch.iloc[0]).title}, {df.strategy.iloc[0]}, augmentation {df.augment.iloc[0]}: image size",
                      xlabel='image size (px)', right=('train_min', 'training minutes'))

@register('resolution', outputs=_resolution_outputs)
def resolution(study: Study) -> list:
    "Which image size: the quick study's best configuration (by validation) at 84 to 224 px, one seed, the whole one-cycle schedule"
    quick = replace(study, preset='quick', fixed={})
    best = best_record(quick)
    return [quick.config(arch=best.config['arch'], strategy=best.config['strategy'], augment=RESOLUTION['augment'], size=s,
                         epochs=RESOLUTION['epochs'], patience=RESOLUTION['epochs'], seed=0) for s in RESOLUTION['sizes']]

def _imbalance_outputs(study, df):
    tables.write_table(tables.seed_summary(df, ['arch', 'strategy', 'augment', 'class_weights', 'size']), study.layout.tables/'imbalance_table')

@register('imbalance', outputs=_imbalance_outputs)
def imbalance(study: Study) -> list:
    "Class imbalance: the best strategies configuration (by validation) with and without a class-weighted loss, every seed"
    best = best_record(study, suites=('strategies',))
    return [replace(Config(**best.config), class_weights=w, seed=s).validate() for w in (False, True) for s in study.seeds]

HEADLINE = dict(size=224, datasets=('elpv', 'elpv-binary'), tta=True,  # the native cells are 300 px
                goals={'elpv': dict(test_accuracy=0.85, test_macro_f1=0.70), 'elpv-binary': dict(test_accuracy=0.90)})  # asked of the study (issue 12)

def _headline_outputs(study, df):
    cols = ['dataset', 'arch', 'strategy', 'augment', 'class_weights', 'size', 'epochs', 'valid_accuracy', 'valid_macro_f1',
            'test_accuracy', 'test_macro_f1', 'tta_accuracy', 'tta_macro_f1', 'train_seconds']
    tables.write_table(df[cols], study.layout.tables/'headline_table')

@register('headline', export=True, outputs=_headline_outputs)
def headline(study: Study) -> list:
    """The headline model: the best cell on validation (architectures, strategies, imbalance: a backbone too costly for the
    grids can still win), trained once at full resolution, tested with and without TTA"""
    if not suite_records('strategies', study): raise UserError(f"No strategies records for preset {study.preset!r}: run --suite strategies first")
    best = best_record(study, suites=('architectures', 'strategies', 'imbalance'))
    m = get_arch(best.config['arch']).size_multiple
    return [replace(Config(**best.config), dataset=d, size=int(round(HEADLINE['size']/m))*m, tta=HEADLINE['tta'], seed=0).validate()
            for d in HEADLINE['datasets']]

@register('benchmark', kind='study')
def benchmark(study: Study):
    "What each architecture costs to run at the preset's and the headline's size: parameters, MB, batch-1 latency and throughput"
    from .benchmark import benchmark_study
    archs = [study.arch] if study.arch else [a.name for a in OFFLINE]
    sizes = tuple(sorted({study.config().size, HEADLINE['size']}))
    print(benchmark_study(study.layout.results/'benchmark', archs, sizes).to_string(index=False))

@register('analysis', kind='study')
def analysis(study: Study):
    "Where and why the headline model (else the best by validation macro-F1) fails on the test split, from its exported learner"
    from .analysis import analyse
    lay = study.layout
    heads = [r for r in suite_records('headline', study) if r.config['dataset'] == study.dataset]
    rec = heads[0] if heads else best_record(study)
    out = check_writable(lay.tables/'analysis')
    model, tag = out/'model.pkl', out/'model.json'
    shipped = model.exists() and tag.exists() and json.loads(tag.read_text()).get('key') == rec.key
    if not shipped:
        exported = lay.models/f'{rec.key}.pkl'
        if not exported.exists():
            print(f"no exported learner for {rec.key}: retraining it (seeded) and checking it reproduces its record", flush=True)
            learn, again = train(Config(**rec.config))
            if abs(again.test['accuracy'] - rec.test['accuracy']) > 1e-9 or again.history != rec.history:
                msg = (f"Retraining {rec.key} gave test accuracy {again.test['accuracy']:.4f}, its record says "
                       f"{rec.test['accuracy']:.4f} (another machine, library version or code): not analysing a model "
                       f"that is not the recorded one. Put the learner exported with that record at {exported}, or rerun its suite")
                if (out/'errors.csv').exists(): return print(f"{msg}; the committed analysis is kept.", flush=True)
                raise UserError(msg)
            export(learn, exported)
        shutil.copyfile(exported, model); tag.write_text(json.dumps(dict(key=rec.key, suite=rec.suite), indent=1))
    res = analyse(model, rec, out, lay.figures)
    print(f"analysis of {rec.key}: reloaded test accuracy {res['reloaded_accuracy']:.4f} (record {rec.test['accuracy']:.4f}); "
          f"{len(res['errors'])} errors by category: {res['errors'].category.value_counts().to_dict()}")

@register('report', kind='study')
def report(study: Study):
    "The PDF report (at most 10 pages) from the committed records, tables and figures; its claims checked against them"
    from .findings import values
    from .report import build_report
    from .data import load_source
    recs = {n: suite_records(n, study) for n, s in SUITES.items() if s.configs}
    frames = {n: records_frame(complete_records(n, study, rs)) for n, rs in recs.items() if n != 'smoke'}
    summary = study.layout.tables/'analysis'/'summary.json'  # the analysis is of one finished run, shown once that run is this study's
    mine = {r.key: r for rs in recs.values() for r in rs}
    analysed = mine.get(json.loads(summary.read_text())['model']) if summary.exists() else None
    source = load_source(study.dataset, 32)
    figures.class_examples(source, study.layout.figures/'class_examples')
    v = values(frames, study.layout, source, PRESETS, study.preset, analysed)
    print(f"report: {build_report(v, study.layout.figures, study.layout.report)} ({sum(c['holds'] for c in v['claims'])} claims checked)")

def run(name: str, study: Study):
    "Run suite `name` (a training suite or a study of finished work)"
    suite = SUITES[name]
    if suite.configs: return run_suite(suite, study)
    return suite.study(study)

ORDER = ['smoke', 'resolution', 'architectures', 'domain-gap', 'strategies', 'imbalance', 'data-efficiency', 'headline', 'benchmark', 'analysis', 'report']
SUITES = {name: SUITES[name] for name in ORDER}  # the study's reading order: the CLI's choices and `all` follow it
