import numpy as np, pytest, torch
from ftl.train import Config, build_learner, run
from ftl.features import backbone_features, cached_features, feature_key, cached_path_applies
from ftl.models import weights_id
from ftl.data import load_source

CFG = Config(dataset='synthetic', size=32, arch='efficientnet_lite0', epochs=2, bs=16, strategy='feature-extraction')

def test_cached_and_slow_paths_give_the_same_features():
    learn, src = build_learner(CFG)
    feats, hit = cached_features(CFG.arch, weights_id(CFG.arch), CFG.size, src, lambda: learn)
    assert not hit and feats.shape == (len(src.labels), 1280)
    again, hit = cached_features(CFG.arch, weights_id(CFG.arch), CFG.size, src, lambda: pytest.fail('recomputed'))
    assert hit and np.array_equal(again, feats)
    # the slow path: the frozen learner's own forward pass up to the head's linear layer
    xb, yb = learn.dls.valid.one_batch()
    learn.model.eval()
    with torch.no_grad(): slow = learn.model[1][:2](learn.model[0](xb)).numpy()
    assert np.allclose(feats[src.idx('valid')[:len(xb)]], slow, atol=1e-4)

def test_a_cache_is_never_used_for_another_configuration():
    src32, src48 = load_source('synthetic', 32), load_source('synthetic', 48)
    base = feature_key('efficientnet_lite0', 'w1', 32, src32)
    assert base == feature_key('efficientnet_lite0', 'w1', 32, load_source('synthetic', 32))
    assert base != feature_key('efficientnet_lite0', 'w1', 48, src48)          # image size
    assert base != feature_key('efficientnet_lite0', 'w2', 32, src32)          # weights
    assert base != feature_key('mobilenetv2', 'w1', 32, src32)                 # architecture
    other = load_source('synthetic', 32); other.images = other.images.copy(); other.images[0, 0, 0] ^= 1
    assert base != feature_key('efficientnet_lite0', 'w1', 32, other)          # dataset content

def test_linear_probe_runs_on_cached_features_and_says_so(tiny):
    assert cached_path_applies(CFG) and not cached_path_applies(Config(**{**CFG.__dict__, 'augment': 'fastai'}))
    from ftl.train import train
    from sklearn.metrics import confusion_matrix
    learn, r = train(CFG)
    assert r.train_path == 'cached-features'
    src = load_source('synthetic', 32); test = src.idx('test')
    feats, hit = cached_features(CFG.arch, weights_id(CFG.arch), CFG.size, src, lambda: pytest.fail('recomputed'))
    with torch.no_grad(): pred = learn.model(torch.from_numpy(feats[test])).argmax(1).numpy()
    assert r.test['confusion'] == confusion_matrix(src.labels[test], pred, labels=[0, 1, 2]).tolist()  # the trained head, test features
    assert r.hyperparams['stages'][0]['trainable_params'] == 1280*3 + 3
    assert not cached_path_applies(Config(**{**CFG.__dict__, 'strategy': 'full-finetune'}))
    assert tiny[2].train_path == 'end-to-end'  # a run of another strategy trains end to end (the session's fine-tune run)

@pytest.mark.parametrize('arch, size', [('efficientnet_lite0', 32), ('vit_small_dinov2', 28)])
def test_a_probe_keeps_its_head_and_is_made_whole_as_it_was_scored(tmp_path, arch, size):
    from ftl.train import run_config, probe_as_model, probe_head_file
    cfg = Config(dataset='synthetic', size=size, arch=arch, epochs=2, bs=16, strategy='feature-extraction')
    rec = run_config(cfg, tmp_path)
    assert rec.train_path == 'cached-features' and not list(tmp_path.glob('*.pkl'))  # a few KB kept, not the backbone
    learn = probe_as_model(cfg, torch.load(probe_head_file(tmp_path, cfg.key()), weights_only=True))
    src = load_source('synthetic', size)
    probs, _ = learn.get_preds(dl=learn.dls.test_dl([src.images[i] for i in src.idx('test')]))
    assert np.allclose(probs.numpy(), rec.predictions['test']['probs'], atol=1e-3)
