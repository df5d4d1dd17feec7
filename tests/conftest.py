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

# --- long subprocesses in the background ------------------------------------------------------------------------------
# A test module may define `background_commands(tmp) -> [subprocess kwargs]`: once a selected test reads them (through the
# `background` fixture), those commands are queued, and that module's tests run last. One thread of this process runs the
# queue, one command at a time: with one torch thread per process their work takes the other core while the rest of the
# suite runs, instead of adding to its time. Each module's commands get a fresh FTL_CACHE of their own in `tmp`.

QUEUE = []  # the one thread that runs every module's background commands, in the order the modules' tests will run

class Background:
    "A module's commands, queued behind the other modules': `results()` waits for their `CompletedProcess`es"
    def __init__(self, commands, tmp):
        from concurrent.futures import ThreadPoolExecutor
        if not QUEUE: QUEUE.append(ThreadPoolExecutor(1, thread_name_prefix='background'))
        self.tmp, self.proc, self.stopped = tmp, None, False
        self.future = QUEUE[0].submit(self._run, commands)
    def _run(self, commands):
        import subprocess
        done = []
        for kw in commands:
            if self.stopped: break
            env = {**kw.pop('env', os.environ), 'FTL_CACHE': str(self.tmp/'cache')}
            self.proc = subprocess.Popen(**kw, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out, err = self.proc.communicate()
            done.append(subprocess.CompletedProcess(kw['args'], self.proc.returncode, out, err))
        return done
    def results(self) -> list: return self.future.result()
    def stop(self):
        self.stopped = True
        if self.proc is not None and self.proc.poll() is None: self.proc.kill()

def _waits(item): return 'background' in getattr(item, 'fixturenames', ())  # a selected test reads its module's background

def pytest_collection_modifyitems(session, config, items):
    "The tests of modules with background commands run last: the commands get the rest of the suite's time"
    later = {item.module for item in items if _waits(item)}
    items.sort(key=lambda item: getattr(item, 'module', None) in later)

def pytest_collection_finish(session):
    "Start the background commands of each module with a selected test that reads them (in a temporary folder, removed at the end)"
    import shutil, tempfile
    from pathlib import Path
    if session.config.option.collectonly: return
    for mod in dict.fromkeys(item.module for item in session.items if _waits(item)):
        tmp = Path(tempfile.mkdtemp(prefix=f'{mod.__name__}-'))
        mod.BACKGROUND = bg = Background(mod.background_commands(tmp), tmp)
        session.config.add_cleanup(lambda bg=bg: (bg.stop(), bg.future.exception(), shutil.rmtree(bg.tmp, ignore_errors=True)))

@pytest.fixture(scope='module')
def background(request, tmp_path_factory) -> tuple:
    "(folder, `CompletedProcess`es) of the module's background commands: started at collection, else run here"
    bg = getattr(request.module, 'BACKGROUND', None) or Background(request.module.background_commands(
        tmp := tmp_path_factory.mktemp('background')), tmp)
    return bg.tmp, bg.results()
