import os, warnings, pytest
warnings.filterwarnings('ignore', category=FutureWarning)
# tests never reach a hub, here or on a machine with internet; huggingface_hub reads this once, when first imported (by the test
# modules' imports, before any fixture runs), so it is set here: set later, a hub lookup waits out its network timeouts
os.environ['HF_HUB_OFFLINE'] = '1'

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
