"Levers toward the study's goals: each a change to the headline cell, measured on validation before the headline uses it"
from __future__ import annotations
from dataclasses import replace
from ..models import get_arch
from ..runner import Study, register
from ..choices import best_record
from .headline import settings as headline_settings

SETTINGS = {  # per preset: the levers tried (a name and the Config fields it changes); a preset without them tries none
    'study': dict(levers={'native resolution': dict(size=300)}),  # the native images are 300 px (a ViT rounds to its patch: 294)
}

def lever_configs(study: Study) -> dict:
    "Lever name -> the headline cell's first-seed config with that lever applied (sizes rounded to the backbone's multiple)"
    levers = SETTINGS.get(study.preset, {}).get('levers', {})
    if not levers: return {}
    best = best_record(study, suites=('architectures', 'strategies', 'imbalance')).config
    m = get_arch(best['arch']).size_multiple
    base = study.config(**{**best, 'size': headline_settings(study.preset)['size'], 'tta': headline_settings(study.preset)['tta'], 'seed': 0})
    return {name: replace(base, **{**ch, **({'size': int(ch['size'])//m*m} if 'size' in ch else {})}).validate() for name, ch in levers.items()}

@register('levers', order=65)
def levers(study: Study) -> list:
    "Levers toward the goals: the headline cell with one change each (e.g. native resolution), one seed, judged on validation"
    return list(lever_configs(study).values())
