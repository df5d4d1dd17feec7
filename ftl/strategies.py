"Fine-tuning strategies, each a short function of a fastai `Learner`, a config and the callbacks of one run; augmentations"
from __future__ import annotations
import numpy as np, torch
from fastai.vision.all import aug_transforms, BnFreeze, Dihedral, Brightness, Contrast

__all__ = ['STRATEGIES', 'feature_extraction', 'full_finetune', 'gradual_unfreeze', 'discriminative_lr', 'fine_tune',
           'AUGMENTATIONS', 'FLIPS', 'flips_draw', 'augmentations', 'describe_augmentation', 'N_GROUPS']

N_GROUPS = 4  # parameter groups of every ftl learner: three body groups (timm's group_matcher) and the head

FLIPS = (0, 1, 2, 4)  # fastai's dihedral indices that keep horizontal lines horizontal: none, the two flips, the half-turn

def flips_draw(x) -> torch.Tensor:
    "One of FLIPS per image of the batch `x`, uniformly (fastai's `Dihedral` draws its index with this)"
    return torch.tensor(FLIPS, device=x.device)[torch.randint(0, len(FLIPS), (x.size(0),), device=x.device)]

# name -> (fastai batch transforms applied to training batches only, what they do in words, their settings)
AUGMENTATIONS = {
    'none': (lambda: [], 'none', {}),
    'fastai': (lambda **p: aug_transforms(**p), "fastai's standard augmentation (flips incl. vertical, small rotation, zoom, warp, lighting)",
               dict(do_flip=True, flip_vert=True, max_rotate=10., min_zoom=1., max_zoom=1.1, max_lighting=0.2, max_warp=0.1,
                    p_affine=0.75, p_lighting=0.75)),  # images seen from above (inspection, tissue tiles) have no canonical up: vertical flips too
    'dihedral': (lambda dihedral_p, max_lighting, p_lighting: [Dihedral(p=dihedral_p), Brightness(max_lighting, p_lighting),
                                                               Contrast(max_lighting, p_lighting)],
                 'the 8 symmetries of the square (flips and 90-degree rotations) with mild brightness and contrast changes',
                 dict(dihedral_p=1.0, max_lighting=0.1, p_lighting=0.75)),  # images with no canonical orientation
    'flips': (lambda flips_p, max_lighting, p_lighting: [Dihedral(p=flips_p, draw=flips_draw), Brightness(max_lighting, p_lighting),
                                                         Contrast(max_lighting, p_lighting)],
              'horizontal and vertical flips and the half-turn (no quarter-turns: horizontal lines stay horizontal) with mild '
              'brightness and contrast changes', dict(flips_p=1.0, max_lighting=0.1, p_lighting=0.75)),
}

def augmentations(name: str) -> list:
    "The batch transforms of augmentation arm `name` (fastai applies them to training batches only)"
    make, _, params = AUGMENTATIONS[name]
    return make(**params)

def describe_augmentation(name: str) -> dict:
    "What augmentation arm `name` does, in words and settings, read from its definition"
    _, words, params = AUGMENTATIONS[name]
    return dict(name=name, description=words, **params)

def feature_extraction(learn, cfg, cbs):
    "Backbone frozen entirely, BatchNorm statistics included; only the head trains"
    learn.train_bn = False  # fastai reads train_bn when it creates the optimizer, so make a new one
    learn.create_opt()
    learn.freeze()
    learn.fit_one_cycle(cfg.epochs, cfg.lr, cbs=cbs + [BnFreeze()])

def full_finetune(learn, cfg, cbs):
    "Every layer trainable with one learning rate"
    learn.unfreeze()
    learn.fit_one_cycle(cfg.epochs, cfg.lr, cbs=cbs)

def gradual_unfreeze(learn, cfg, cbs):
    "Head first, then one more parameter group per stage from the top down, until all train; `cfg.epochs` spread over the stages"
    n_groups = len(learn.splitter(learn.model))
    for k, n_epochs in enumerate(map(len, np.array_split(range(cfg.epochs), n_groups)), 1):
        learn.freeze_to(-k)
        learn.fit_one_cycle(n_epochs, cfg.lr if k == 1 else slice(cfg.lr/(10*k), cfg.lr/k), cbs=cbs)

def discriminative_lr(learn, cfg, cbs):
    "All layers trainable; learning rates spread geometrically from `lr/100` (earliest group) to `lr` (head)"
    learn.unfreeze()
    learn.fit_one_cycle(cfg.epochs, slice(cfg.lr/100, cfg.lr), cbs=cbs)

def fine_tune(learn, cfg, cbs):
    "fastai's own recipe: `freeze_epochs` on the head, then all layers with discriminative rates (`fine_tune`)"
    learn.fine_tune(cfg.epochs - cfg.freeze_epochs, cfg.lr, freeze_epochs=cfg.freeze_epochs, cbs=cbs)

STRATEGIES = {'feature-extraction': feature_extraction, 'full-finetune': full_finetune, 'gradual-unfreeze': gradual_unfreeze,
              'discriminative-lr': discriminative_lr, 'fine-tune': fine_tune}
