"ftl experiments: `python experiments.py --suite <name>` runs a study, resumably, and prints its table"
from fastcore.script import call_parse
from ftl import suites, records, train, report

SUITES = {  # the study, in reading order
    'smoke':         suites.smoke,          # one real pretrained run on the embedded default
    'architectures': suites.architectures,  # which pretrained backbone
    'strategies':    suites.strategies,     # which way of fine-tuning it, augmentation off / on
    'data-efficiency': suites.data_efficiency,  # how much labelled data, pretrained vs from scratch
}
ACTIONS = {  # studies of finished work, not lists of training runs
    'benchmark': report.benchmark_suite,    # what each architecture costs to run
    'analysis':  report.analysis_suite,     # where and why the best model fails
    'report':    report.build_report,       # the PDF, from the committed records, tables and figures
}
ALL = ['architectures', 'strategies', 'data-efficiency', 'benchmark', 'analysis', 'report']

def summary_line(rec, fresh):
    "One line per finished (or skipped) run"
    t = rec['test']
    print(f"{'ran ' if fresh else 'skip'} {rec['key']}: test acc {t['accuracy']:.3f} macro-F1 {t['macro_f1']:.3f} "
          f"best epoch {rec['best_epoch'] + 1}/{len(rec['history'])} {rec['train_seconds']:.0f}s", flush=True)

def study(suite, dataset='elpv', arch=None, size=None, epochs=None, preset='quick', online=False, results='results', bs=None):
    "Run one suite (or `all`) and write its tables and figures; finished runs are skipped"
    if suite == 'all':
        for s in ALL: study(s, dataset, arch, size, epochs, preset, online, results, bs)
        return
    if suite in ACTIONS: return ACTIONS[suite](results=results)
    if suite not in SUITES: raise SystemExit(f"Unknown suite {suite!r}; choose from {list(SUITES) + list(ACTIONS) + ['all']}")
    if preset not in train.PRESETS: raise SystemExit(f"Unknown preset {preset!r}; choose from {list(train.PRESETS)}")
    kw = {k: v for k, v in dict(size=size, epochs=epochs, bs=bs).items() if v is not None}
    if suite == 'architectures': kw['online'] = online
    if suite in ('strategies', 'data-efficiency'): kw['results'] = results
    configs = SUITES[suite](preset=preset, dataset=dataset, arch=arch, **kw)
    print(f"suite {suite}: {len(configs)} runs -> {results}/{suite}/", flush=True)
    run_fn = train.run_exported if suite in ('architectures', 'strategies') else train.run  # the analysis reloads these
    records.run_suite(configs, suite, results, run_fn=run_fn, on_record=summary_line)
    df = records.load_records(f'{results}/{suite}')
    cols = ['arch', 'pretrained', 'strategy', 'augment', 'fraction', 'seed', 'n_train', 'best_epoch', 'epochs_run',
            'valid_macro_f1', 'test_accuracy', 'test_macro_f1', 'train_seconds']
    print(df[df.key.isin([c.key() for c in configs])][cols].round(3).to_string(index=False))
    report.write_suite_outputs(suite, results)  # tables under results/, figures under figures/

@call_parse
def main(suite:str='smoke',          # smoke, architectures, strategies, data-efficiency, benchmark, analysis, report, or all
         dataset:str='elpv',         # elpv (default, 4 defect levels), elpv-binary, medmnist:<flag>, folder:<path>, synthetic
         arch:str=None,              # architecture (ftl or timm name); default: the suite's choice
         size:int=None,              # image size in pixels; default: the preset's
         epochs:int=None,            # maximum epochs per run (early stopping on validation may end sooner); default: the preset's
         preset:str='quick',         # quick (sized for a 2-core CPU) or full (the study's settings, for a GPU)
         online:bool=False,          # architectures suite: the timm-hub set (needs internet) instead of the packaged offline set
         results:str='results',      # folder for the JSON records, one per run
         bs:int=None):               # batch size; default: the preset's (on a large GPU, raise it to fill the device)
    "Run one ftl suite; finished runs are skipped, so an interrupted suite resumes where it stopped"
    study(suite, dataset, arch, size, epochs, preset, online, results, bs)
