import json, pytest
from ftl.train import Config, run, run_exported
from ftl.records import run_suite, save_record, load_records, record_path

TINY = Config(dataset='synthetic', size=32, arch='efficientnet_lite0', epochs=2, bs=16, patience=2)

@pytest.fixture(scope='module')
def tiny_record(): return run(TINY)

def test_a_run_writes_a_complete_record(tiny_record):
    r = json.loads(json.dumps(tiny_record))  # JSON-ready
    assert r['config'] == {**r['config'], 'dataset': 'synthetic', 'arch': 'efficientnet_lite0', 'pretrained': True}
    assert len(r['history']) == 2 and {'epoch', 'train_loss', 'valid_loss', 'accuracy', 'macro_f1', 'lr'} <= set(r['history'][0])
    assert 0 <= r['best_epoch'] < len(r['history'])
    assert r['history'][r['best_epoch']]['valid_loss'] == min(e['valid_loss'] for e in r['history'])
    t = r['test']
    assert 0 <= t['accuracy'] <= 1 and 0 <= t['macro_f1'] <= 1 and t['classes'] == ['class0', 'class1', 'class2']
    assert sum(map(sum, t['confusion'])) == r['n_test'] == sum(c['support'] for c in t['per_class'].values())
    assert abs(t['accuracy'] - sum(t['confusion'][i][i] for i in range(3))/r['n_test']) < 1e-9
    assert r['n_train'] == 72 and r['normalization'] == {'mean': [0.5]*3, 'std': [0.5]*3}
    assert r['hyperparams']['precision'] == 'fp32' and r['env']['torch'] and r['train_seconds'] > 0

def test_suite_skips_finished_runs(tmp_path, tiny_record):
    calls = []
    def fake_run(cfg): calls.append(cfg); return tiny_record
    other = Config(**{**TINY.__dict__, 'seed': 1})
    save_record(tiny_record, record_path(tmp_path, 'smoke', TINY))
    run_suite([TINY, other], 'smoke', tmp_path, run_fn=fake_run)
    assert calls == [other]  # the finished run was skipped, the missing one ran
    run_suite([TINY, other], 'smoke', tmp_path, run_fn=fake_run)
    assert calls == [other]
    assert len(load_records(tmp_path)) == 2

def test_the_same_config_in_another_suite_is_reused_not_rerun(tmp_path, tiny_record):
    save_record(tiny_record, record_path(tmp_path, 'architectures', TINY))
    def must_not_run(cfg): raise AssertionError('reran a finished config')
    rec = run_suite([TINY], 'strategies', tmp_path, run_fn=must_not_run)[0]
    assert rec['reused_from'] == f'architectures/{TINY.key()}.json' and record_path(tmp_path, 'strategies', TINY).exists()

def test_interrupted_write_leaves_no_half_record(tmp_path, tiny_record):
    path = tmp_path/'suite'/'run.json'
    class Boom:
        def __float__(self): raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt): save_record({**tiny_record, 'bad': Boom()}, path)
    assert not path.exists() and list(path.parent.iterdir()) == []
    save_record(tiny_record, path)
    assert json.loads(path.read_text())['key'] == TINY.key()

def test_config_keys_are_stable_and_distinct():
    assert TINY.key() == Config(**TINY.__dict__).key()
    assert TINY.key() != Config(**{**TINY.__dict__, 'lr': 1e-3}).key()
    with pytest.raises(ValueError, match='Unknown strategy'): Config(strategy='magic').validate()

def test_suite_runs_export_their_learner_for_the_analysis(tmp_path):
    from fastai.learner import load_learner
    cfg = Config(**{**TINY.__dict__, 'epochs': 1, 'strategy': 'full-finetune'})
    rec = run_exported(cfg, models=tmp_path)
    learn = load_learner(tmp_path/f'{cfg.key()}.pkl')
    assert sum(p.numel() for p in learn.model.parameters()) == rec['params']
    probe = Config(**{**cfg.__dict__, 'strategy': 'feature-extraction'})  # cached-feature path: no backbone to export
    run_exported(probe, models=tmp_path/'probe')
    assert not (tmp_path/'probe').exists()

def test_record_names_classes_in_the_model_output_order(tiny_record):
    r = tiny_record
    assert r['vocab'] == r['test']['classes'] == ['class0', 'class1', 'class2']
    assert [c['support'] for c in r['test']['per_class'].values()] == [sum(row) for row in r['test']['confusion']]
