"Smoke: one real pretrained run on the default dataset (the fields given on the command line apply)"
from __future__ import annotations
from ..config import Config
from ..runner import Study, register


@register('smoke', order=0)
def smoke(study: Study) -> list:
    "One real pretrained run on the default dataset (the fields given on the command line apply)"
    return [study.config(arch=study.arch or Config.arch)]
