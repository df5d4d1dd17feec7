"Suites as lists of configs: what each study runs, derived from a preset and earlier results"
from __future__ import annotations
from pathlib import Path
from .models import OFFLINE, ONLINE, get_arch
from .strategies import STRATEGIES
from .train import preset_config, PRESETS
from .records import load_records

__all__ = ['smoke', 'architectures', 'strategies', 'data_efficiency', 'best_arch', 'budget_factor', 'FRACTIONS', 'DEFAULT_ARCH']

DEFAULT_ARCH = 'efficientnet_lite0'
FRACTIONS = (1.0, 0.5, 0.25, 0.1, 0.05)

def _seeds(preset, seeds=None): return tuple(seeds) if seeds is not None else PRESETS[preset]['seeds']

def smoke(preset='quick', dataset='elpv', arch=None, **kw):
    "One real pretrained run on the default dataset"
    return [preset_config(preset, dataset=dataset, arch=arch or DEFAULT_ARCH, **kw)]

def architectures(preset='quick', dataset='elpv', arch=None, seeds=None, online=False, **kw):
    "Every architecture of the active set (offline packaged weights, or the hub), pretrained, 100 % data, `fine-tune`"
    archs = [arch] if arch else [a.name for a in (ONLINE if online else OFFLINE)]
    return [preset_config(preset, dataset=dataset, arch=a, seed=s, **kw) for a in archs for s in _seeds(preset, seeds)]

def best_arch(results='results', dataset='elpv', default=DEFAULT_ARCH) -> str:
    "The architecture with the best mean validation macro-F1 (at each run's best epoch) in the architectures results"
    df = load_records(Path(results)/'architectures')
    if df.empty or 'dataset' not in df or not (df.dataset == dataset).any(): return default
    return df[df.dataset == dataset].groupby('arch').valid_macro_f1.mean().idxmax()

def strategies(preset='quick', dataset='elpv', arch=None, seeds=None, results='results', **kw):
    "Every strategy, augmentation off and on, on the best (or given) architecture at 100 % data"
    arch = arch or best_arch(results, dataset)
    return [preset_config(preset, dataset=dataset, arch=arch, strategy=st, augment=aug, seed=s, **kw)
            for st in STRATEGIES for aug in (False, True) for s in _seeds(preset, seeds)]

def budget_factor(fraction, min_share=0.25) -> float:
    "Epoch multiplier giving a run on `fraction` of the data at least `min_share` of the full-data optimizer steps"
    return max(1.0, min_share/fraction)

def data_efficiency(preset='quick', dataset='elpv', arch=None, seeds=(0, 1, 2), results='results', fractions=FRACTIONS,
                    scratch_lr=1e-2, scratch_epochs_factor=1.5, **kw):
    """Pretrained (`fine-tune`) vs from scratch (`full-finetune`, its own lr and epoch budget) at nested stratified fractions.
    Small fractions get more epochs so that every run has at least a quarter of the full-data steps. Both arms train their
    whole one-cycle budget (patience = epochs: early stopping would fire during the warm-up, at the peak learning rate,
    before the schedule anneals) and restore their best validation epoch"""
    arch = arch or best_arch(results, dataset)
    base = preset_config(preset, dataset=dataset, arch=arch, **kw)
    def arms(f):
        pt, sc = (int(round(base.epochs*k*budget_factor(f))) for k in (1, scratch_epochs_factor))
        return [dict(pretrained=True, strategy='fine-tune', epochs=pt, patience=pt),
                dict(pretrained=False, strategy='full-finetune', lr=scratch_lr, epochs=sc, patience=sc)]
    return [preset_config(preset, **{**base.__dict__, **arm, 'fraction': f, 'seed': s})
            for f in fractions for s in seeds for arm in arms(f)]
