import os, warnings, pytest
warnings.filterwarnings('ignore', category=FutureWarning)
# tests never reach a hub, here or on a machine with internet; huggingface_hub reads this once, when first imported (by the test
# modules' imports, before any fixture runs), so it is set here: set later, a hub lookup waits out its network timeouts
os.environ['HF_HUB_OFFLINE'] = '1'
# one torch thread per process (unless OMP_NUM_THREADS says otherwise), set before torch is imported: these tiny models gain
# little from a second thread, and a thread per core spin-waits whenever another process wants a core (on a busy 2-core
# machine a test ran 10x slower with two threads than with one); subprocesses (the CLI, the notebook's kernel) inherit it
os.environ.setdefault('OMP_NUM_THREADS', '1')

@pytest.fixture(scope='session', autouse=True)
def ftl_cache(tmp_path_factory):
    "A fresh cache per test session, so weight conversion and data decoding really run"
    path = tmp_path_factory.mktemp('ftl-cache')
    os.environ['FTL_CACHE'] = str(path)
    return path

@pytest.fixture(scope='session')
def synthetic():
    from ftl.data import load_source
    return load_source('synthetic', 32)

@pytest.fixture(scope='session')
def tiny():
    "A real two-epoch run on synthetic data: (config, learner, record)"
    from ftl.train import Config, train
    cfg = Config(dataset='synthetic', size=32, arch='efficientnet_lite0', epochs=2, bs=16, patience=2)
    learn, rec = train(cfg)
    return cfg, learn, rec

DRIVER = r'''
import contextlib, io, json, runpy, sys, traceback
out = []
for args in json.loads(sys.argv[1]):
    sys.argv, so, se = ['experiments.py', *args], io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        try: runpy.run_path('experiments.py', run_name='__main__'); rc = 0
        except SystemExit as e:  # as the interpreter ends a script: an int is the status, anything else is printed, status 1
            rc = e.code if isinstance(e.code, int) else 0 if e.code is None else (print(e.code, file=sys.stderr) or 1)
        except BaseException: traceback.print_exc(); rc = 1
    out.append(dict(args=args, returncode=rc, stdout=so.getvalue(), stderr=se.getvalue()))
print(json.dumps(out))
'''

@pytest.fixture(scope='session')
def run_experiments():
    """`run_experiments([args], ...)`: `python experiments.py *args` for each list, run as `__main__` one after another in one
    fresh interpreter (started and imported once, not once a command); a list of `CompletedProcess` as separate runs would give"""
    import json, subprocess, sys
    from pathlib import Path
    def run(*calls):
        p = subprocess.run([sys.executable, '-c', DRIVER, json.dumps([list(map(str, a)) for a in calls])],
                           cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-3000:]
        return [subprocess.CompletedProcess(**r) for r in json.loads(p.stdout.splitlines()[-1])]
    return run

# --- long subprocesses in the background ------------------------------------------------------------------------------
# A test module may define `background_commands(tmp) -> [subprocess kwargs]`: once its tests are selected, those commands
# start, one after another, in a thread of this process, and the module's tests run last. With one torch thread per
# process the commands' work takes the other core while the rest of the suite runs, instead of adding to its time.

class Background:
    "Commands run one after another in a thread (their work is theirs): `results()` waits for their `CompletedProcess`es"
    def __init__(self, commands, tmp):
        from concurrent.futures import ThreadPoolExecutor
        self.tmp, self.proc, self.stopped = tmp, None, False
        self.future = ThreadPoolExecutor(1, thread_name_prefix='background').submit(self._run, commands)
    def _run(self, commands):
        import subprocess
        done = []
        for kw in commands:
            if self.stopped: break
            self.proc = subprocess.Popen(**kw, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out, err = self.proc.communicate()
            done.append(subprocess.CompletedProcess(kw['args'], self.proc.returncode, out, err))
        return done
    def results(self) -> list: return self.future.result()
    def stop(self):
        self.stopped = True
        if self.proc is not None and self.proc.poll() is None: self.proc.kill()

def _has_background(item): return hasattr(getattr(item, 'module', None), 'background_commands')

def pytest_collection_modifyitems(session, config, items):
    "The tests of modules with background commands run last: the commands get the rest of the suite's time"
    items.sort(key=_has_background)

def pytest_collection_finish(session):
    "Start each selected module's background commands (in a temporary folder of their own, removed at the end)"
    import shutil, tempfile
    from pathlib import Path
    if session.config.option.collectonly: return
    for mod in dict.fromkeys(item.module for item in session.items if _has_background(item)):
        tmp = Path(tempfile.mkdtemp(prefix=f'{mod.__name__}-'))
        mod.BACKGROUND = bg = Background(mod.background_commands(tmp), tmp)
        session.config.add_cleanup(lambda bg=bg: (bg.stop(), bg.future.exception(), shutil.rmtree(bg.tmp, ignore_errors=True)))
