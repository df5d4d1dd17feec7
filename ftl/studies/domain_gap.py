"How far the domain is from each backbone's pretraining: a linear probe on its frozen features against the fine-tuned backbone"
from __future__ import annotations
from dataclasses import replace
import pandas as pd
from ..config import Config
from ..runner import Study, register, suite_records
from ..records import records_frame
from ..prose import pm, table, title, claim
from .. import tables
from .architectures import architectures


def values(v, raw, frames, lay, p):
    "How far the domain is from each backbone's pretraining: a probe on frozen features against the fine-tuned backbone"
    g, a = frames.get('domain-gap', pd.DataFrame()), frames.get('architectures', pd.DataFrame())
    if not (len(g) and len(a)): return
    t = tables.domain_gap_table(g, a)
    v['domain_gap'] = table(t, {'architecture': lambda r: title(r.arch), 'pretraining': lambda r: r.pretraining,
                                'probe valid macro-F1': lambda r: pm(r.valid_macro_f1_mean_probe, r.valid_macro_f1_std_probe),
                                'probe test macro-F1': lambda r: pm(r.test_macro_f1_mean_probe, r.test_macro_f1_std_probe),
                                'fine-tuned test macro-F1': lambda r: pm(r.test_macro_f1_mean_finetuned, r.test_macro_f1_std_finetuned),
                                'gap': lambda r: f'{r.test_macro_f1_gap:+.3f}'})
    raw['domain_gap'], raw['probe_f1'] = dict(zip(t.arch, t.test_macro_f1_gap)), dict(zip(t.arch, t.valid_macro_f1_mean_probe))
    raw['pretraining'] = dict(zip(t.arch, t.pretraining))
    v['domain_gap_range'] = dict(lo=f'{t.test_macro_f1_gap.min():+.3f}', hi=f'{t.test_macro_f1_gap.max():+.3f}',
                                 best_probe=title(t.loc[t.valid_macro_f1_mean_probe.idxmax(), 'arch']))

def _domain_gap_outputs(study, df):
    finetuned = records_frame(suite_records('architectures', study))
    if len(finetuned): tables.write_table(tables.domain_gap_table(df, finetuned), study.layout.tables/'domain_gap_table')

@register('domain-gap', outputs=_domain_gap_outputs, values=values, order=20)
def domain_gap(study: Study) -> list:
    "How far the domain is from each backbone's pretraining: a linear probe on its frozen features (no augmentation), every seed"
    return [replace(c, strategy='feature-extraction', augment='none', precision=Config.precision).validate()  # features are cached in fp32
            for c in architectures(study)]

@claim('finetune-beats-probe', 'for every backbone, fine-tuning beats the linear probe on its frozen features in test macro-F1')
def _(v): return all(g > 0 for g in v['raw']['domain_gap'].values())

@claim('ssl-weakest-probe-largest-gap', 'the self-supervised backbone has the weakest probe (validation macro-F1) and the largest fine-tuning gain')
def _(v):
    ssl = next(a for a, p in v['raw']['pretraining'].items() if 'self-supervised' in p)
    return min(v['raw']['probe_f1'], key=v['raw']['probe_f1'].get) == ssl and max(v['raw']['domain_gap'], key=v['raw']['domain_gap'].get) == ssl
