"Which image size: the best recipe found so far at several sizes, one seed, the whole one-cycle schedule"
from __future__ import annotations
from dataclasses import replace
import pandas as pd
from ..models import get_arch
from ..config import PRESETS
from ..runner import Study, register
from ..choices import best_record
from ..prose import num, table, title, claim, interval
from ..metrics import PRIMARY, get_metric
from .. import tables, figures


def values(v, raw, frames, lay, p):
    "Which image size, and which epoch to restore"
    r = frames.get('resolution', pd.DataFrame())
    if not len(r): return
    t = tables.seed_summary(r, ['size'], ('valid_accuracy', 'valid_macro_f1', 'test_accuracy', 'test_macro_f1')).sort_values('size')
    raw['resolution'] = [dict(size=int(x['size']), valid_macro_f1=x.valid_macro_f1_mean, minutes=x.train_min) for _, x in t.iterrows()]
    chosen = next((PRESETS[n]['size'] for n, x in SETTINGS.items() if x.get('from_preset') == p['name']), p['size'])  # the size this sweep chose
    raw['study_size'] = chosen; v['study_size'] = num(chosen)
    v['study_size_preset'] = next((n for n, x in SETTINGS.items() if x.get('from_preset') == p['name']), p['name'])
    v['resolution'] = table(t, {'size (px)': lambda x: num(x['size']), 'valid accuracy': lambda x: num(x.valid_accuracy_mean),
                                'valid macro-F1': lambda x: num(x.valid_macro_f1_mean), 'test accuracy': lambda x: num(x.test_accuracy_mean),
                                'test macro-F1': lambda x: num(x.test_macro_f1_mean), 'minutes': lambda x: num(x.train_min, 1)})
    sel = tables.selection_table(r)
    raw['rule_last'], raw['rule_loss'] = list(sel[sel.rule == 'last'].valid_macro_f1), list(sel[sel.rule == 'valid_loss'].valid_macro_f1)
    f1 = f'valid {get_metric(PRIMARY).label}'  # what the table scores each rule's epoch by (the records' valid_macro_f1)
    v['selection'] = table(sel.pivot_table(index='size', columns='rule', values=f'valid_{PRIMARY}').reset_index(),
                           {'size (px)': lambda x: num(x['size']), f'{f1} at lowest valid loss': lambda x: num(x['valid_loss']),
                            f'{f1} at its highest (optimistic)': lambda x: num(x[PRIMARY]), f'{f1} at last epoch': lambda x: num(x['last'])})
    s = settings(p['name'])
    v['resolution_setup'] = dict(arch=title(r.arch.iloc[0]), strategy=r.strategy.iloc[0], augment=r.augment.iloc[0], epochs=num(r.epochs.iloc[0]),
                                 from_preset=s.get('from_preset', ''), augment_set='augment' in s,
                                 restore=tables.restore_words(r.monitor.iloc[0]))

RESOLUTION = dict(sizes=(84, 128, 160, 224), epochs=16)  # one seed; the recipe's own augmentation
SETTINGS = {  # per preset; 'from_preset': the cheaper study whose best recipe the sweep uses (it chose this preset's size)
    'study': dict(from_preset='quick', augment='dihedral'),  # the committed study: its 128 px came from the quick study's sweep
    'tiny': dict(sizes=(24, 32, 48), epochs=4)}

def settings(preset: str) -> dict: return {**RESOLUTION, **SETTINGS.get(preset, {})}

def _resolution_outputs(study, df):
    lay = study.layout
    tab = tables.seed_summary(df, ['arch', 'strategy', 'augment', 'size'], ('valid_accuracy', 'valid_macro_f1', 'test_accuracy', 'test_macro_f1'))
    tables.write_table(tab.sort_values('size'), lay.tables/'resolution_table')
    tables.write_table(tables.selection_table(df), lay.tables/'selection_rules')
    figures.metric_vs(tab.sort_values('size'), 'size', ['valid_macro_f1_mean', 'test_macro_f1_mean', 'valid_accuracy_mean', 'test_accuracy_mean'],
                      lay.figures/'resolution', f"{get_arch(df.arch.iloc[0]).title}, {df.strategy.iloc[0]}, augmentation {df.augment.iloc[0]}: image size",
                      xlabel='image size (px)', right=('train_min', 'training minutes'))

@register('resolution', outputs=_resolution_outputs, values=values, title='Image size', order=50)
def resolution(study: Study) -> list:
    """Which image size: the best recipe so far (by validation; the preset's `from_preset` study's, if it names one) at
    several sizes, one seed, the whole one-cycle schedule"""
    s = settings(study.preset)
    base = replace(study, preset=s['from_preset'], fixed={}) if 'from_preset' in s else study
    best = best_record(base).config
    return [base.config(arch=best['arch'], strategy=best['strategy'], augment=s.get('augment', best['augment']), size=px,
                        epochs=s['epochs'], patience=s['epochs'], seed=0) for px in s['sizes']]

@claim('resolution-helps', 'validation macro-F1 is higher at the largest image size measured than at the smallest', 'one run per size: no test')
def _(r): x = r['resolution']; return x[-1]['valid_macro_f1'] > x[0]['valid_macro_f1'], 'one run per size: no test of seed noise'

@claim('size-plateau', 'above the chosen study size, validation macro-F1 gains less than 0.02 while training time grows', 'one run per size: no test')
def _(r):
    x, chosen = r['resolution'], r['study_size']
    at = next(e for e in x if e['size'] == chosen) if chosen in [e['size'] for e in x] else r['no size swept at the chosen one']
    return all(e['valid_macro_f1'] - at['valid_macro_f1'] < 0.02 and e['minutes'] > at['minutes'] for e in x if e['size'] > chosen)

@claim('restore-rules-tied', 'the final epoch and the validation-loss pick do not differ in validation macro-F1: the paired 95 % interval over the sizes contains zero', 'paired 95 % t-interval over sizes')
def _(r):
    d, lo, hi = tables.paired_diff(pd.Series(r['rule_last']), pd.Series(r['rule_loss']))
    return bool(lo <= 0 <= hi), f'final epoch minus validation-loss pick, {interval(d, lo, hi)} over {len(r["rule_last"])} sizes'
