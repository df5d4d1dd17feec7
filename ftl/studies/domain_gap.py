"How far the domain is from each backbone's pretraining: a linear probe on its frozen features against the fine-tuned backbone"
from __future__ import annotations
from dataclasses import replace
import numpy as np, pandas as pd
from ..config import Config
from ..runner import Study, register, suite_records
from ..records import records_frame
from ..prose import num, pm, table, title, claim, interval, welch, p_words, ALPHA
from .. import tables
from .architectures import architectures


def values(v, raw, frames, lay, p):
    "How far the domain is from each backbone's pretraining: a probe on frozen features against the fine-tuned backbone"
    g, a = frames.get('domain-gap', pd.DataFrame()), frames.get('architectures', pd.DataFrame())
    if not (len(g) and len(a)): return
    t = tables.domain_gap_table(g, a)
    seeds = lambda f, arch, m: f[f.arch == arch].set_index('seed')[m]
    gaps = {r.arch: tables.paired_diff(seeds(a, r.arch, 'test_macro_f1'), seeds(g, r.arch, 'test_macro_f1')) for _, r in t.iterrows()}
    v['domain_gap'] = table(t, {'architecture': lambda r: title(r.arch), 'pretraining': lambda r: r.pretraining,
                                'probe valid macro-F1': lambda r: pm(r.valid_macro_f1_mean_probe, r.valid_macro_f1_std_probe),
                                'probe test macro-F1': lambda r: pm(r.test_macro_f1_mean_probe, r.test_macro_f1_std_probe),
                                'fine-tuned test macro-F1': lambda r: pm(r.test_macro_f1_mean_finetuned, r.test_macro_f1_std_finetuned),
                                'domain gap [95 % CI]': lambda r: interval(*gaps[r.arch]) if np.isfinite(gaps[r.arch][1]) else f'{r.test_macro_f1_gap:+.3f}'})
    raw['domain_gap'] = {k: dict(gap=d, lo=lo, hi=hi, gap_seeds=list(seeds(a, k, 'test_macro_f1') - seeds(g, k, 'test_macro_f1')),
                                 probe_seeds=list(seeds(g, k, 'valid_macro_f1'))) for k, (d, lo, hi) in gaps.items()}
    weakest = t.loc[t.valid_macro_f1_mean_probe.idxmin()]
    v['domain_gap_range'] = dict(lo=f'{t.test_macro_f1_gap.min():+.3f}', hi=f'{t.test_macro_f1_gap.max():+.3f}',
                                 best_probe=title(t.loc[t.valid_macro_f1_mean_probe.idxmax(), 'arch']), n=num(len(t)),
                                 clear=[title(k) for k, (d, lo, hi) in gaps.items() if lo > 0], ahead=num(sum(d > 0 for d, _, _ in gaps.values())),
                                 weakest=title(weakest.arch), weakest_pretraining=weakest.pretraining, weakest_gap=f'{weakest.test_macro_f1_gap:+.3f}',
                                 largest_gap=title(t.loc[t.test_macro_f1_gap.idxmax(), 'arch']),
                                 tested=bool(g.groupby('arch').seed.nunique().min() > 1))

def _domain_gap_outputs(study, df):
    finetuned = records_frame(suite_records('architectures', study))
    if len(finetuned): tables.write_table(tables.domain_gap_table(df, finetuned), study.layout.tables/'domain_gap_table')

@register('domain-gap', outputs=_domain_gap_outputs, values=values, title='How far the domain is from the pretraining data', order=20)
def domain_gap(study: Study) -> list:
    "How far the domain is from each backbone's pretraining: a linear probe on its frozen features (no augmentation), every seed"
    return [replace(c, strategy='feature-extraction', augment='none', precision=Config.precision).validate()  # features are cached in fp32
            for c in architectures(study)]

@claim('finetune-beats-probe-clearly', "for every backbone, the paired 95 % interval of fine-tuned minus probe test macro-F1 (shared seeds) lies above zero", 'paired 95 % t-interval per backbone')
def _(r):
    g = r['domain_gap']
    return all(x["lo"] > 0 for x in g.values()), "; ".join(f"{title(k)} {interval(x['gap'], x['lo'], x['hi'])}" for k, x in g.items())

@claim('weakest-probe-gains-most', 'the backbone with the weakest probe (validation macro-F1) gains the most from fine-tuning, each separated from the next backbone by a Welch t-test (p < 0.05)', 'Welch t-tests')
def _(r):
    g = r['domain_gap']
    probe = sorted(g, key=lambda k: np.mean(g[k]['probe_seeds'])); gain = sorted(g, key=lambda k: -g[k]['gap'])
    if len(g) < 2: raise KeyError('one backbone')
    _, p1 = welch(g[probe[1]]['probe_seeds'], g[probe[0]]['probe_seeds'])
    _, p2 = welch(g[gain[0]]['gap_seeds'], g[gain[1]]['gap_seeds'])
    return probe[0] == gain[0] and p1 < ALPHA and p2 < ALPHA, f'Welch t-tests: weakest probe {p_words(p1)}, largest gain {p_words(p2)}'
