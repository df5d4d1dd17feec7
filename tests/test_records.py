import json, shutil, subprocess, sys, pytest
from pathlib import Path
from ftl.records import Record, read_records, load_record, save_record, records_frame, SCHEMA_VERSION
from ftl import tables, runner as suites
import ftl.studies, ftl.figures

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT/'results').rglob('*.json'))

def test_every_committed_record_is_schema_2_and_round_trips():
    recs = read_records(ROOT/'results')
    assert len(recs) >= 40
    for r in recs:
        d = json.loads(Path(r.path).read_text())
        assert d['version'] == SCHEMA_VERSION and Record.from_dict(d).to_dict() == d
        assert Path(r.path).stem == r.key == suites.Config(**r.config).key()  # the file is named by the config it holds

def migrate(folder, monkeypatch):
    "`python tools/migrate_records.py folder`, run as a script in this interpreter (ftl and fastai are imported already)"
    import runpy
    monkeypatch.setattr(sys, 'argv', ['migrate_records.py', str(folder)]); monkeypatch.setattr(sys, 'path', list(sys.path))
    runpy.run_path(str(ROOT/'tools'/'migrate_records.py'), run_name='__main__')

def test_migration_of_a_schema_1_record_matches_the_committed_one(tmp_path, monkeypatch):
    "The migration tool applied to a schema-1 record from history reproduces the committed schema-2 record"
    old = subprocess.run(['git', 'show', '53cd532:results/smoke/' + 'elpv-efficientnet_lite0-pt-fine-tune-noaug-f1-s0-e8c28fae.json'],
                         cwd=ROOT, capture_output=True, text=True)
    if old.returncode:  # the first smoke record of history; fall back to the newest schema-1 copy of it
        old = subprocess.run(['git', 'show', 'b0b3d04:results/smoke/elpv-efficientnet_lite0-pt-fine-tune-noaug-f1-s0-e8c28fae.json'],
                             cwd=ROOT, capture_output=True, text=True)
    if old.returncode: pytest.skip('history without the schema-1 record (shallow clone)')
    (tmp_path/'smoke').mkdir(); (tmp_path/'smoke'/'old.json').write_text(old.stdout)
    migrate(tmp_path, monkeypatch)
    new = read_records(tmp_path)[0]
    assert new.version == SCHEMA_VERSION and new.best_epoch == json.loads(old.stdout)['best_epoch'] + 1
    for s in new.hyperparams['stages']:  # the replayed schedule is the one that ran: its peaks match the measured ones
        assert s['peak_lr'] == pytest.approx(s['applied_peak_lr'], rel=1e-3)
    migrate(tmp_path, monkeypatch)
    assert read_records(tmp_path)[0] == new  # idempotent

def test_every_table_is_built_from_the_one_frame(monkeypatch, tmp_path):
    real = records_frame
    def tagged(recs): df = real(recs); df.attrs['from'] = 'records_frame'; return df
    monkeypatch.setattr(suites, 'records_frame', tagged)
    inputs = {}
    for name in ('architecture_table', 'strategy_table', 'efficiency_table', 'hyperparameter_table', 'crossing'):
        fn = getattr(tables, name)
        monkeypatch.setattr(tables, name, lambda df, *a, _fn=fn, _n=name, **k: inputs.setdefault(_n, []).append(df.attrs.get('from')) or _fn(df, *a, **k))
    written = {}
    monkeypatch.setattr(tables, 'write_table', lambda df, path: written.setdefault(Path(path).name, df))
    monkeypatch.setattr(ftl.figures, 'training_curves', lambda *a, **k: None)
    monkeypatch.setattr(ftl.figures, 'efficiency_plot', lambda *a, **k: None)
    shutil.copytree(ROOT/'results', tmp_path/'results')
    st = suites.Study(results=str(tmp_path/'results'))
    for name in ('architectures', 'strategies', 'data-efficiency'): suites.write_outputs(suites.SUITES[name], st)
    assert {'architectures_table', 'strategies_table', 'data_efficiency_table', 'hyperparameters'} <= set(written)
    assert set(inputs) == {'architecture_table', 'strategy_table', 'efficiency_table', 'hyperparameter_table', 'crossing'}
    assert all(v == 'records_frame' for calls in inputs.values() for v in calls)  # every table from the one frame
    assert written['data_efficiency_table'].test_macro_f1_mean.dtype == float  # numbers stay numbers until written

def test_the_analysed_model_is_shipped_with_the_analysis():
    "A clean clone reproduces the analysis from the committed learner instead of retraining"
    if not (ROOT/'results'/'analysis'/'model.json').exists(): pytest.skip('no committed analysis')
    tracked = subprocess.run(['git', 'ls-files', 'results/analysis/model.pkl'], cwd=ROOT, capture_output=True, text=True).stdout
    assert tracked.strip() == 'results/analysis/model.pkl'
