import os, warnings, pytest
warnings.filterwarnings('ignore', category=FutureWarning)

@pytest.fixture(scope='session', autouse=True)
def ftl_cache(tmp_path_factory):
    "A fresh cache per test session, so weight conversion and data decoding really run"
    path = tmp_path_factory.mktemp('ftl-cache')
    os.environ['FTL_CACHE'] = str(path)
    os.environ['HF_HUB_OFFLINE'] = '1'  # tests never reach a hub, here or on a machine with internet
    return path

@pytest.fixture(scope='session')
def synthetic():
    from ftl.data import load_source
    return load_source('synthetic', 32)
