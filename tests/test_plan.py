import time
import pytest
from dataclasses import replace
from ftl.runner import Study, Suite, run_suite, plan
from ftl.plan import estimate
from ftl.records import read_records
from ftl.train import Config
from ftl.files import cache_dir
import ftl.studies

TINY = [Config(dataset='synthetic', size=32, arch='efficientnet_lite0', epochs=3, bs=16, patience=3),
        Config(dataset='synthetic', size=32, arch='mobilenetv2', strategy='gradual-unfreeze', augment='fastai', epochs=4, bs=16, patience=4),
        Config(dataset='synthetic', size=32, arch='mobilenetv2', strategy='feature-extraction', epochs=3, bs=16, patience=3)]

def tiny_suite(name='planned'): return Suite(name, 'three tiny runs', configs=lambda study: TINY)

def test_a_plan_trains_nothing_and_writes_no_record(tmp_path, capsys, monkeypatch):
    from ftl import runner
    monkeypatch.setitem(runner.SUITES, 'planned', tiny_suite())
    monkeypatch.setattr(runner, 'run_config', lambda *a, **k: (_ for _ in ()).throw(AssertionError('a plan trained')))
    study = Study(dataset='synthetic', preset='tiny', results=str(tmp_path/'r'))
    total = plan(['planned', 'report'], study)
    out = capsys.readouterr().out
    assert total > 0 and not read_records(tmp_path/'r') and not list((tmp_path/'r').rglob('*.json'))
    assert not any(cache_dir('checkpoints').iterdir())
    for c in TINY: assert c.key() in out
    assert 'planned: 3 runs, 3 to train' in out and 'report: no training' in out and 'total: about' in out

def test_a_tiny_suites_plan_is_within_a_factor_of_two_of_its_measured_time(tmp_path, capsys):
    study = Study(dataset='synthetic', preset='tiny', results=str(tmp_path/'r'))
    ests, trust = estimate(TINY, study.layout.results)
    planned = sum(e.seconds for e in ests)
    start = time.time(); run_suite(tiny_suite(), study); measured = time.time() - start
    print(f"planned {planned:.1f} s, measured {measured:.1f} s")
    assert measured/2 < planned < 2*measured, (planned, measured)
    out = capsys.readouterr().out
    assert 'planned: 3/3 runs done, about 0 min left' in out and 'planned: 1/3 runs done' in out

def test_the_plan_is_corrected_by_this_hosts_records_of_the_same_setting(tmp_path):
    study = Study(dataset='synthetic', preset='tiny', results=str(tmp_path/'r'))
    run_suite(tiny_suite(), study)
    again = [replace(c, seed=1) for c in TINY]
    ests, trust = estimate(again, study.layout.results)
    e2e = [e for e in ests if e.fit > 0]
    assert trust['n'] == len(e2e) == 2 and all(e.factor != 1 for e in e2e)
    recs = {r.key: r for r in read_records(tmp_path/'r')}
    for e in e2e:  # the factor is the record's actual over estimated fit time: the same setting is now estimated as it ran
        assert abs(e.fit*e.factor/recs[replace(e.cfg, seed=0).key()].train_seconds - 1) < 1e-6

def test_each_runs_first_estimate_is_kept_and_set_beside_what_it_took(tmp_path, monkeypatch):
    import pandas as pd
    from ftl import runner, method
    from ftl.records import records_frame
    monkeypatch.setitem(runner.SUITES, 'planned', tiny_suite())
    study = Study(dataset='synthetic', preset='tiny', results=str(tmp_path/'r'))
    plan(['planned'], study)
    first = pd.read_csv(tmp_path/'r'/'plan.csv')
    assert sorted(first.key) == sorted(c.key() for c in TINY) and (first.suite == 'planned').all()
    plan(['planned'], study)  # planned again before running: the first estimate stays
    assert pd.read_csv(tmp_path/'r'/'plan.csv').equals(first)
    run_suite(runner.SUITES['planned'], study)
    v, raw = {}, {}
    method.budget(v, raw, {'planned': records_frame(read_records(tmp_path/'r'/'planned'))}, study.layout, {})
    took = sum(r.train_seconds for r in read_records(tmp_path/'r'/'planned'))/60
    assert raw['plan_vs_actual'] == pytest.approx((first.planned_min.sum(), took)) and v['budget']['planned']['runs'] == '3'
