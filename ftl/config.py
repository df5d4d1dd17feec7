"What defines a run: `Config` (plain, hashable data whose `key` names the record) and the presets, settings per kind of machine"
from __future__ import annotations
import hashlib, json, math, re
from dataclasses import dataclass, fields, replace
from .errors import ConfigError, DataError
from .data import resolve_dataset, dataset_id
from .models import get_arch
from .features import cached_path_applies
from .strategies import STRATEGIES, AUGMENTATIONS, N_GROUPS
from .losses import LOSSES

__all__ = ['Config', 'PRESETS', 'MONITORS', 'PRECISIONS', 'preset_config', 'grid_runs', 'strategy_order']

MONITORS = ('valid_loss', 'macro_f1', 'accuracy', 'last')  # what picks the restored epoch on validation; 'last': the final one
PRECISIONS = ('auto', 'fp32', 'bf16')

@dataclass(frozen=True)
class Config:
    "Everything that defines one run; its `key` names the record"
    dataset: str = 'elpv'
    size: int = 84
    arch: str = 'efficientnet_lite0'
    pretrained: bool = True
    strategy: str = 'fine-tune'
    augment: str = 'none'        # a name in strategies.AUGMENTATIONS
    mixup: bool = False
    head: str = 'linear'         # 'linear' (pool + one linear layer) or 'mlp' (fastai's two-layer head)
    fraction: float = 1.0        # stratified share of the training split; validation and test never shrink
    seed: int = 0
    epochs: int = 8              # total epochs of the run, across its stages
    freeze_epochs: int = 1       # fine-tune: epochs on the head before unfreezing (part of `epochs`)
    lr: float = 2e-3
    bs: int = 32
    patience: int = 3            # epochs without a better `monitor` before stopping; >= epochs: never stops early
    monitor: str = 'valid_loss'  # one of MONITORS: the validation quantity that restores the best epoch
    class_weights: bool = False  # the loss weighted by inverse class frequency of the training subset
    loss: str = 'cross-entropy'  # a name in losses.LOSSES ('ordinal' reads the classes in label order as levels)
    tta: bool = False            # also evaluate the test split with fastai's test-time augmentation
    precision: str = 'auto'      # 'auto': fp16 (to_fp16) where CUDA exists, else fp32; 'fp32'; or 'bf16' (autocast, CPU or CUDA)
    skip_bad_images: bool = False  # folder datasets: list and skip unreadable images instead of stopping

    def key(self, dataset=None) -> str:
        "A readable, unique file name: the fields that differ from the defaults (and a folder dataset's content) hashed"
        changed = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}
        ident = dataset_id(dataset or self.dataset)  # a resolved `Dataset` hashes a folder's files once
        h = hashlib.sha1(json.dumps({**changed, **({'data': ident} if ident else {})}, sort_keys=True).encode()).hexdigest()[:8]
        init = 'pt' if self.pretrained else 'scratch'
        name = re.sub(r'[:#?&=]', '-', self.dataset.replace('/', '_'))  # a file name, whatever the dataset's argument
        return (f"{name}-{self.arch}-{init}-{self.strategy}-"
                f"{self.augment}-f{self.fraction:g}-s{self.seed}-{h}")

    def validate(self):
        "Check every field at the boundary, with a message that names the field, the value and what is allowed"
        self.resolve(); return self

    def resolve(self) -> tuple:
        "(`Dataset`, `Arch`) of this run, each name looked up once at the boundary, with every field checked"
        def need(ok, field, allowed):
            if not ok: raise ConfigError(f"Config.{field} must be {allowed}, got {getattr(self, field)!r}")
        num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        integer = lambda v: isinstance(v, int) and not isinstance(v, bool)
        try: dataset = resolve_dataset(self.dataset)
        except DataError as e: raise ConfigError(f'Config.dataset: {e}') from None
        a = get_arch(self.arch)
        need(integer(self.size) and self.size >= 16 and self.size % a.size_multiple == 0, 'size',
             f'an integer >= 16' + (f' and a multiple of {a.size_multiple} for {a.name}' if a.size_multiple > 1 else ''))
        need(self.strategy in STRATEGIES, 'strategy', f'one of {list(STRATEGIES)}')
        need(self.augment in AUGMENTATIONS, 'augment', f'one of {list(AUGMENTATIONS)}')
        need(self.head in ('linear', 'mlp'), 'head', "'linear' or 'mlp'")
        need(self.loss in LOSSES, 'loss', f'one of {list(LOSSES)}')
        need(num(self.fraction) and 0 < self.fraction <= 1, 'fraction', 'in (0, 1]')
        need(integer(self.seed) and self.seed >= 0, 'seed', 'an integer >= 0')
        need(integer(self.epochs) and self.epochs >= 1, 'epochs', 'an integer >= 1')
        if self.strategy == 'gradual-unfreeze': need(self.epochs >= N_GROUPS, 'epochs', f'>= {N_GROUPS} for gradual-unfreeze (one stage per parameter group)')
        need(integer(self.freeze_epochs) and self.freeze_epochs >= 0, 'freeze_epochs', 'an integer >= 0')
        if self.strategy == 'fine-tune' and integer(self.epochs) and self.epochs <= self.freeze_epochs:
            raise ConfigError(f"Config.epochs is {self.epochs}, but fine-tune trains the head alone for freeze_epochs = {self.freeze_epochs} "
                              f"before the rest on every layer: pass --epochs {self.freeze_epochs + 1} or more, or another --strategy")
        if self.strategy == 'fine-tune':
            need(self.freeze_epochs >= 1, 'freeze_epochs', 'at least 1 for fine-tune')
        need(num(self.lr) and self.lr > 0, 'lr', 'a positive number')
        need(integer(self.bs) and self.bs >= 1, 'bs', 'an integer >= 1')
        need(integer(self.patience) and self.patience >= 1, 'patience', 'an integer >= 1')
        need(self.monitor in MONITORS, 'monitor', f'one of {list(MONITORS)}')
        for b in ('pretrained', 'mixup', 'class_weights', 'tta', 'skip_bad_images'): need(isinstance(getattr(self, b), bool), b, 'True or False')
        need(self.precision in PRECISIONS, 'precision', f'one of {list(PRECISIONS)}')
        return dataset, a

PRESETS = {  # settings for a kind of machine: Config fields, plus the seeds and augmentation arms a suite runs
    # a first look at a new dataset, minutes on 2 CPU cores: strategies without augmentation (the levers suite still tries the
    # augmentation that fits the images on the best configuration); an augmented arm per strategy cost 5 more runs, 20 % of the time
    'tiny': dict(size=32, epochs=4, patience=4, bs=16, seeds=(0,), augment_arms=('none',)),
    'quick': dict(size=84, epochs=8, patience=3, bs=32, seeds=(0,), augment_arms=('none', 'fastai')),  # a first look on 2 CPU cores
    'full': dict(size=224, epochs=30, patience=30, bs=64, seeds=(0, 1, 2), augment_arms=('none', 'dihedral')),  # the study, for a GPU
    # this CPU's study, within 6 hours: 128 px (validation macro-F1 within 0.01 of 224 px at a sixth of the cost: the resolution
    # suite), the whole one-cycle schedule, the final annealed epoch restored (no worse than the validation-loss pick on average);
    # the grid suites build on a backbone whose strategies grid fits `grid_hours` of this CPU; the ViT, the costliest
    # family, trains in bfloat16 autocast (bench/bf16.py times both precisions and pairs their records' accuracy)
    'study': dict(size=128, epochs=12, patience=12, bs=32, seeds=(0, 1, 2), augment_arms=('none', 'dihedral'), monitor='last',
                  grid_hours=4, bf16_families=('ViT',)),
}

def grid_runs(preset: str) -> int:
    "Runs in a preset's strategies grid: every strategy, augmentation arm and seed"
    return len(STRATEGIES)*len(PRESETS[preset]['augment_arms'])*len(PRESETS[preset]['seeds'])

def strategy_order(augment_arms) -> dict:
    "The rows of a strategies table: strategies in `STRATEGIES` order, then augmentation arms in the preset's order"
    return dict(strategy=list(STRATEGIES), augment=list(augment_arms))

def preset_config(preset='quick', **kw) -> Config:
    "A `Config` with a preset's settings (bf16 for its `bf16_families`, where a network trains), overridden by `kw`"
    if preset not in PRESETS: raise ConfigError(f"Unknown preset {preset!r}; choose from {list(PRESETS)}")
    names = {f.name for f in fields(Config)}
    if (unknown := set(kw) - names): raise ConfigError(f"Unknown Config fields {sorted(unknown)}; the fields are {sorted(names)}")
    cfg = Config(**{**{k: v for k, v in PRESETS[preset].items() if k in names}, **kw}).validate()
    bf16 = any(get_arch(cfg.arch).family.startswith(f) for f in PRESETS[preset].get('bf16_families', ()))
    return replace(cfg, precision='bf16') if bf16 and 'precision' not in kw and not cached_path_applies(cfg) else cfg

