import json, os, subprocess, sys, pytest
from dataclasses import replace
from pathlib import Path
from ftl import runner as suites, choices
import ftl.studies
from ftl.runner import SUITES, Study, Suite, run_suite, pending_configs, Layout, REPORTED_PRESET
from ftl.train import Config
from ftl.records import save_record, record_path, read_records, load_record
from ftl.errors import ResultsError

ROOT = Path(__file__).resolve().parents[1]

ERRORS = [(['--lr', '-1'], 'Config.lr must be a positive number'), (['--preset', 'huge'], "Unknown preset 'huge'"),
          (['--dataset', 'folder:{tmp}/none'], 'does not exist')]

def background_commands(tmp):
    "`--help`, then each of ERRORS on the smoke suite, in one interpreter (tests/cli_driver.py), begun when collected"
    calls = [['--help'], *[['--suite', 'smoke', '--results', str(tmp/'r'), *(a.format(tmp=tmp) for a in args)] for args, _ in ERRORS]]
    return [dict(args=[sys.executable, str(ROOT/'tests'/'cli_driver.py'), json.dumps(calls)], cwd=ROOT)]

@pytest.fixture(scope='module')
def cli(background):
    "The command lines' exit statuses and streams, one `CompletedProcess` each"
    (driver,) = background[1]
    assert driver.returncode == 0, driver.stderr[-3000:]
    return [subprocess.CompletedProcess(**r) for r in json.loads(driver.stdout.splitlines()[-1])]

def test_every_suite_is_described_once_and_the_cli_lists_exactly_those(cli):
    out = cli[0].stdout
    assert cli[0].returncode == 0
    choices = out.split('--suite {')[1].split('}')[0].split(',')
    assert choices == [*SUITES, 'all']
    for s in SUITES.values():
        assert (s.configs is None) != (s.study is None) and s.doc and s.name == [k for k, v in SUITES.items() if v is s][0]
    import experiments
    assert experiments.ALL == [n for n in SUITES if n != 'smoke']

def test_cli_prints_user_errors_as_one_line_and_exits_nonzero(cli):
    for p, (_, msg) in zip(cli[1:], ERRORS, strict=True):
        assert p.returncode != 0 and msg in p.stderr and 'Traceback' not in p.stderr, p.stderr

def fake_suite(configs, export=False): return Suite('smoke', 'test suite', configs=lambda st: configs, export=export)

def test_a_resumed_suite_runs_only_what_is_missing(tmp_path, tiny, monkeypatch):
    cfg, _, rec = tiny
    other = replace(cfg, seed=1)
    calls = []
    monkeypatch.setattr(suites, 'run_config', lambda c, models=None: calls.append(c) or replace(rec, key=c.key(), config={**rec.config, 'seed': c.seed}))
    study = Study(dataset='synthetic', results=str(tmp_path))
    save_record(rec, record_path(tmp_path, 'smoke', cfg.key()))
    run_suite(fake_suite([cfg, other]), study)
    assert calls == [other]  # the finished run was skipped, the missing one ran
    run_suite(fake_suite([cfg, other]), study)
    assert calls == [other] and len(read_records(tmp_path/'smoke')) == 2

def test_a_report_never_shows_half_a_suite(tmp_path, tiny, monkeypatch):
    cfg, _, rec = tiny
    other = replace(cfg, seed=1)
    monkeypatch.setitem(suites.SUITES, 'smoke', fake_suite([cfg, other]))
    study = Study(dataset='synthetic', results=str(tmp_path))
    save_record(rec, record_path(tmp_path, 'smoke', cfg.key()))
    assert len(suites.suite_records('smoke', study)) == 1 and suites.complete_records('smoke', study) == []
    save_record(replace(rec, key=other.key(), config={**rec.config, 'seed': 1}), record_path(tmp_path, 'smoke', other.key()))
    assert len(suites.complete_records('smoke', study)) == 2

def test_the_same_config_in_another_suite_is_reused_not_rerun(tmp_path, tiny):
    cfg, _, rec = tiny
    save_record(rec, record_path(tmp_path, 'architectures', cfg.key()))
    todo = pending_configs(Suite('strategies', 'x'), [cfg], tmp_path, report=lambda r, h: None)
    assert todo == [] and load_record(record_path(tmp_path, 'strategies', cfg.key())).reused_from == f'architectures/{cfg.key()}.json'

def test_a_corrupt_record_is_named_set_aside_and_rerun(tmp_path, tiny, capsys):
    cfg, _, rec = tiny
    path = record_path(tmp_path, 'smoke', cfg.key()); path.parent.mkdir(parents=True)
    path.write_text('{"config": {"trunc')
    with pytest.warns(UserWarning, match=cfg.key()): assert read_records(tmp_path) == []
    assert pending_configs(Suite('smoke', 'x'), [cfg], tmp_path) == [cfg]
    assert cfg.key() in capsys.readouterr().out and list(path.parent.glob('*.corrupt-*')) and not path.exists()

@pytest.mark.skipif(os.geteuid() == 0 and sys.platform == 'linux' and not Path('/proc/self').exists(), reason='no /proc')
def test_an_unwritable_results_folder_fails_before_training(tmp_path, monkeypatch):
    blocker = tmp_path/'file'; blocker.write_text('not a folder')  # unwritable even for root: a path through a file
    monkeypatch.setattr(suites, 'run_config', lambda *a: pytest.fail('trained before checking the results folder'))
    with pytest.raises(ResultsError, match=r'file.*cannot be written.*--results'):
        run_suite(fake_suite([Config(dataset='synthetic', size=32)]), Study(results=str(blocker/'results')))

def test_results_elsewhere_keep_figures_models_and_report_there(tmp_path):
    assert Layout.of('results') == Layout(Path('results'), Path('results'), Path('figures'), Path('models'), Path('report'))
    lay = Layout.of(tmp_path/'trial')
    assert all(str(p).startswith(str(tmp_path/'trial')) for p in (lay.tables, lay.figures, lay.models, lay.report))

def test_a_quick_look_never_rewrites_the_committed_study():
    study, quick = Study(preset=REPORTED_PRESET).layout, Study(preset='quick').layout
    assert quick.results == study.results and quick.models == study.models  # one store of records and learners
    for a, b in ((quick.tables, study.tables), (quick.figures, study.figures), (quick.report, study.report)):
        assert a != b and a.parent == b and a.name == 'quick'


def test_study_settings_the_user_fixed_apply_to_every_run():
    st = Study(dataset='synthetic', fixed=dict(size=32, epochs=4, strategy='full-finetune', seed=2))
    cfgs = SUITES['architectures'].configs(st)
    assert {(c.arch, c.size) for c in cfgs} == {('efficientnet_lite0', 32), ('mobilenetv2', 32), ('vit_small_dinov2', 28)}  # patch 14
    assert {(c.epochs, c.strategy, c.seed) for c in cfgs} == {(4, 'full-finetune', 2)} and len(cfgs) == 3

def test_data_efficiency_configs_cover_every_arm_fraction_and_seed():
    cfgs = SUITES['data-efficiency'].configs(Study(dataset='synthetic', arch='mobilenetv2'))
    cells = {(c.pretrained, c.strategy, c.fraction, c.seed) for c in cfgs}
    assert len(cfgs) == len(cells) == 3*5*3 and len({c.key() for c in cfgs}) == 45  # fine-tuned, frozen probe, scratch
    assert {c.augment for c in cfgs if c.strategy == 'feature-extraction'} == {'none'}  # the cached-feature probe
    from ftl.studies.data_efficiency import DATA_EFFICIENCY
    from ftl.studies.levers import census, fitting_augmentation
    fit = fitting_augmentation(census(Study(dataset='synthetic')))
    scratch = [c for c in cfgs if not c.pretrained]
    assert all(c.strategy == 'full-finetune' and c.lr > cfgs[0].lr and c.monitor == 'valid_loss' for c in scratch)
    assert {(c.augment, c.patience) for c in scratch} == {(fit, DATA_EFFICIENCY['scratch_patience'])}  # the augmentation its images fit
    full = {(c.pretrained, c.strategy): c.epochs for c in cfgs if c.fraction == 1.0}
    assert full[False, 'full-finetune'] == DATA_EFFICIENCY['scratch_epochs_factor']*full[True, 'fine-tune']  # room to plateau
    for c in cfgs:  # every run gets at least a quarter of the full-data optimizer steps; pretrained arms train their whole budget
        f = full[c.pretrained, c.strategy]
        assert c.epochs*c.fraction >= 0.25*f - 0.5 and c.epochs >= f and (c.patience == c.epochs or not c.pretrained)

def test_data_efficiency_runs_on_the_best_backbone_by_validation_and_shows_its_earlier_grid_meanwhile(tmp_path, tiny):
    _, _, rec = tiny
    st = Study(dataset='synthetic', results=str(tmp_path))
    def save(suite, c, f1=0.5): save_record(replace(rec, key=c.key(), config=c.__dict__, history=[{**e, 'macro_f1': f1} for e in rec.history]),
                                            record_path(tmp_path, suite, c.key()))
    for c in SUITES['architectures'].configs(st): save('architectures', c, 0.9 if c.arch == 'vit_small_dinov2' else 0.5)
    want = SUITES['data-efficiency'].configs(st)
    assert {c.arch for c in want} == {'vit_small_dinov2'}  # the best cell's backbone, whatever its cost
    old = SUITES['data-efficiency'].configs(replace(st, arch='mobilenetv2'))
    for c in old[:-1]: save('data-efficiency', c)
    assert suites.shown_records('data-efficiency', st) == ([], False)  # an incomplete earlier grid is never shown
    save('data-efficiency', old[-1])
    shown, earlier = suites.shown_records('data-efficiency', st)
    assert earlier and {r.key for r in shown} == {c.key() for c in old}
    other = Study(dataset='synthetic', results=str(tmp_path), fixed=dict(size=48))  # another preset's or size's grid is not this study's
    assert suites.shown_records('data-efficiency', other) == ([], False)
    for c in want: save('data-efficiency', c)
    shown, earlier = suites.shown_records('data-efficiency', st)
    assert not earlier and {r.key for r in shown} == {c.key() for c in want}  # once complete, the chosen grid alone

def test_architectures_and_strategies_suites():
    assert {c.arch for c in SUITES['architectures'].configs(Study())} == {'efficientnet_lite0', 'mobilenetv2', 'vit_small_dinov2'}
    st = SUITES['strategies'].configs(Study(arch='mobilenetv2'))
    assert {(c.strategy, c.augment) for c in st} == {(s, a) for s in ('feature-extraction', 'full-finetune', 'gradual-unfreeze',
                                                                     'discriminative-lr', 'fine-tune') for a in ('none', 'fastai')}

def test_epochs_are_the_total_of_a_run_across_its_stages(tiny):
    from ftl.train import train
    gradual = Config(dataset='synthetic', size=32, arch='mobilenetv2', bs=16, strategy='gradual-unfreeze', epochs=5, patience=5)
    for cfg, rec, stages in [(gradual, train(gradual)[1], 4), (tiny[0], tiny[2], 2)]:  # 5 epochs over 4 stages; fine-tune's 2 stages
        assert rec.hyperparams['epochs_max'] == cfg.epochs == len(rec.history) and len(rec.hyperparams['stages']) == stages
    # each strategy's stages add up to its epochs: tests/test_strategies.py::test_recorded_schedule_is_what_fastai_applied

def test_the_study_preset_uses_one_protocol_and_three_seeds_per_cell_in_every_suite(tmp_path, tiny):
    from ftl.train import PRESETS
    st = Study(preset='study', results=str(tmp_path))
    _, _, rec = tiny  # a strategies record of the study, so that imbalance and headline can pick their recipe
    best = SUITES['strategies'].configs(st)[0]
    save_record(replace(rec, key=best.key(), config=best.__dict__), record_path(tmp_path, 'strategies', best.key()))
    for name in ('architectures', 'domain-gap', 'strategies', 'imbalance', 'data-efficiency', 'headline'):
        cfgs = SUITES[name].configs(st)
        whole = [c for c in cfgs if c.pretrained]  # from scratch, data efficiency trains until validation loss plateaus
        assert whole and all(c.patience == c.epochs and c.monitor == PRESETS['study']['monitor'] for c in whole), name  # whole schedule, one rule
        cells = {}
        for c in cfgs: cells.setdefault(replace(c, seed=0).key(), set()).add(c.seed)
        want = set(PRESETS['study']['seeds'])  # the headline too: every seed of the preset, scored alone and as an ensemble
        assert cells and all(seeds == want for seeds in cells.values()), (name, cells)
    assert len(PRESETS['study']['seeds']) >= 3

def test_the_best_recipe_is_the_best_cell_by_mean_over_seeds_not_a_lucky_seed(tmp_path, tiny, monkeypatch):
    _, _, rec = tiny
    st = Study(preset='study', results=str(tmp_path))
    cfgs = {(c.strategy, c.augment, c.seed): c for c in SUITES['strategies'].configs(st)}
    f1 = {('full-finetune', 0): 0.90, ('full-finetune', 1): 0.30, ('full-finetune', 2): 0.30,      # one lucky seed, mean 0.50
          ('fine-tune', 0): 0.60, ('fine-tune', 1): 0.62, ('fine-tune', 2): 0.61}                  # steady, mean 0.61
    for (strategy, seed), f in f1.items():
        c = cfgs[strategy, 'none', seed]
        h = [{**e, 'macro_f1': f} for e in rec.history]
        save_record(replace(rec, key=c.key(), config=c.__dict__, history=h), record_path(tmp_path, 'strategies', c.key()))
    best = choices.best_record(st, suites=('strategies',))
    assert (best.config['strategy'], best.config['seed']) == ('fine-tune', 0)
    assert {c.strategy for c in SUITES['headline'].configs(st)} == {'fine-tune'}

def test_the_architecture_later_suites_use_is_the_smallest_within_one_standard_error_of_the_best(tmp_path, tiny):
    _, _, rec = tiny
    st = Study(preset='study', results=str(tmp_path))
    cfgs = {(c.arch, c.seed): c for c in SUITES['architectures'].configs(st)}
    params = {'efficientnet_lite0': 3_400_000, 'mobilenetv2': 2_200_000, 'vit_small_dinov2': 21_500_000}
    def runs(f1s, minutes=5):
        for (arch, seed), f in f1s.items():
            c = cfgs[arch, seed]
            save_record(replace(rec, key=c.key(), config=c.__dict__, params=params[arch], history=[{**e, 'macro_f1': f} for e in rec.history],
                                train_seconds=60.*minutes), record_path(tmp_path, 'architectures', c.key()))
    small = {('mobilenetv2', s): f for s, f in enumerate((0.55, 0.56, 0.57))}        # mean 0.56
    runs({**small, **{('vit_small_dinov2', s): f for s, f in enumerate((0.54, 0.57, 0.60))}})  # mean 0.57, standard error 0.017
    assert choices.best_arch(st) == 'mobilenetv2'  # the larger model is better by less than its standard error
    runs({('vit_small_dinov2', s): f for s, f in enumerate((0.60, 0.61, 0.62))})    # mean 0.61, clearly better
    assert choices.best_arch(st) == 'vit_small_dinov2'
    from ftl.train import PRESETS
    from ftl.config import grid_runs
    slow = 60*PRESETS['study']['grid_hours']/grid_runs('study') + 1  # minutes per run that would overrun the grid budget
    runs({('vit_small_dinov2', s): f for s, f in enumerate((0.60, 0.61, 0.62))}, minutes=slow)
    assert choices.best_arch(st) == 'mobilenetv2'  # the grids build on a backbone they can afford ...
    c = cfgs['mobilenetv2', 0]  # the strategies grid ran on it (its fine-tune cell is the architectures run)
    save_record(load_record(record_path(tmp_path, 'architectures', c.key())), record_path(tmp_path, 'strategies', c.key()))
    assert {c.arch for c in SUITES['headline'].configs(st)} == {'vit_small_dinov2'}  # ... the headline takes the best cell
