import json, os, signal, threading, time, pytest, torch
from dataclasses import replace
from ftl.runner import Suite, Study, run_suite, sequential
from ftl.records import read_records
from ftl.train import Config
from ftl.distributed import ray_executor, failure_path

ray = pytest.importorskip('ray')
BASE = Config(dataset='synthetic', size=32, arch='mobilenetv2', strategy='full-finetune', epochs=1, bs=16, patience=1)
GRID = [replace(BASE, seed=s) for s in range(3)]

def suite(configs): return Suite('grid', 'a small grid', configs=lambda st: configs)

@pytest.fixture(scope='module')
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200*2**20)
    yield
    ray.shutdown()

def metrics(folder): return {r.key: (r.test, r.history) for r in read_records(folder)}

def test_two_workers_write_exactly_the_records_of_the_sequential_run(tmp_path, cluster):
    threads = torch.get_num_threads(); torch.set_num_threads(1)  # a Ray worker on 2 cores with 2 workers has one thread
    try: run_suite(suite(GRID), Study(results=str(tmp_path/'seq')), executor=sequential)
    finally: torch.set_num_threads(threads)
    run_suite(suite(GRID), Study(results=str(tmp_path/'ray'), workers=2))
    seq, par = metrics(tmp_path/'seq'), metrics(tmp_path/'ray')
    assert set(seq) == set(par) == {c.key() for c in GRID} and seq == par
    calls = []  # rerunning after completion runs nothing
    run_suite(suite(GRID), Study(results=str(tmp_path/'ray')), executor=lambda todo, models, done: calls.append(todo))
    assert calls == [[]]

def test_a_failing_task_is_recorded_and_the_others_finish(tmp_path, cluster):
    bad = replace(BASE, fraction=0.01, seed=7)  # passes validation, fails in training: the subset leaves a class empty
    run_suite(suite([GRID[0], bad]), Study(results=str(tmp_path), workers=2))
    assert [r.key for r in read_records(tmp_path/'grid')] == [GRID[0].key()]
    entry = json.loads(failure_path(tmp_path, 'grid', bad.key()).read_text())
    assert 'leaves class' in entry['error'] and entry['key'] == bad.key()

def test_a_killed_worker_is_retried_and_the_suite_completes(tmp_path, cluster):
    import psutil
    killed = []
    def assassin():  # kill the first worker process seen running a task, mid-task
        deadline = time.time() + 120
        while not killed and time.time() < deadline:
            for p in psutil.process_iter(['pid', 'cmdline']):
                if any('ray::_task' in c for c in (p.info['cmdline'] or [])):
                    os.kill(p.info['pid'], signal.SIGKILL); killed.append(p.info['pid']); break
            time.sleep(0.1)
    t = threading.Thread(target=assassin); t.start()
    slow = [replace(c, epochs=3, patience=3) for c in GRID[:2]]
    run_suite(suite(slow), Study(results=str(tmp_path), workers=2))
    t.join()
    assert killed and {r.key for r in read_records(tmp_path/'grid')} == {c.key() for c in slow}
