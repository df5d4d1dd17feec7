"Fine-tuning strategies: each a short function of a fastai `Learner`, a config and the callbacks of one run"
from __future__ import annotations
from fastai.vision.all import aug_transforms, BnFreeze

__all__ = ['STRATEGIES', 'feature_extraction', 'full_finetune', 'gradual_unfreeze', 'discriminative_lr', 'fine_tune',
           'augmentations', 'AUG_PARAMS']

AUG_PARAMS = dict(do_flip=True, flip_vert=True, max_rotate=10., min_zoom=1., max_zoom=1.1, max_lighting=0.2, max_warp=0.1,
                  p_affine=0.75, p_lighting=0.75)  # solar cells and tissue tiles have no canonical up: vertical flips too

def augmentations(augment: bool):
    "fastai batch augmentations on the training set only (`aug_transforms`), or none"
    return aug_transforms(**AUG_PARAMS) if augment else []

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
    "Head first, then one more parameter group per stage from the top down, until all train"
    n_groups = len(learn.splitter(learn.model))
    per_stage = max(1, cfg.epochs // n_groups)
    for k in range(1, n_groups + 1):
        learn.freeze_to(-k)
        learn.fit_one_cycle(per_stage, cfg.lr if k == 1 else slice(cfg.lr/(10*k), cfg.lr/k), cbs=cbs)

def discriminative_lr(learn, cfg, cbs):
    "All layers trainable; learning rates spread geometrically from `lr/100` (earliest group) to `lr` (head)"
    learn.unfreeze()
    learn.fit_one_cycle(cfg.epochs, slice(cfg.lr/100, cfg.lr), cbs=cbs)

def fine_tune(learn, cfg, cbs):
    "fastai's own recipe: `freeze_epochs` on the head, then all layers with discriminative rates (`fine_tune`)"
    learn.fine_tune(max(1, cfg.epochs - cfg.freeze_epochs), cfg.lr, freeze_epochs=cfg.freeze_epochs, cbs=cbs)

STRATEGIES = {'feature-extraction': feature_extraction, 'full-finetune': full_finetune, 'gradual-unfreeze': gradual_unfreeze,
              'discriminative-lr': discriminative_lr, 'fine-tune': fine_tune}
