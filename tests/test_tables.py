import numpy as np, pandas as pd, pytest
from ftl import tables, suites
from ftl.data import load_source, StratifiedSubsetSplitter

def hist(train, valid): return [dict(epoch=i, stage=0, train_loss=t, valid_loss=v, accuracy=0.5, macro_f1=0.5, lr=[1e-3])
                                for i, (t, v) in enumerate(zip(train, valid))]

def test_overfitting_signals():
    s = tables.overfitting_signals(hist([1.0, 0.6, 0.3, 0.1], [0.9, 0.7, 0.8, 1.0]), best_epoch=1)
    assert s == dict(gap_best=pytest.approx(0.1), gap_last=pytest.approx(0.9), epochs_after_best=2, valid_up_train_down=True)
    assert not tables.overfitting_signals(hist([1.0, 0.8], [0.9, 0.7]), 1)['valid_up_train_down']

def test_crossing_fraction_interpolates_on_log_fraction():
    f = [0.05, 0.1, 0.25, 0.5, 1.0]
    # reaches 0.80 halfway (in log space) between 0.1 (0.70) and 0.25 (0.90)
    assert tables.crossing_fraction(f, [0.6, 0.7, 0.9, 0.92, 0.95], 0.80) == pytest.approx(np.sqrt(0.1*0.25))
    assert tables.crossing_fraction(f, [0.85, 0.9, 0.9, 0.92, 0.95], 0.80) == 0.05  # already at the smallest
    assert np.isnan(tables.crossing_fraction(f, [0.5, 0.6, 0.6, 0.7, 0.75], 0.80))  # never reached

def rec(pretrained, fraction, seed, acc):
    return dict(config=dict(pretrained=pretrained, fraction=fraction, seed=seed, lr=1e-3, epochs=8, patience=8, strategy='s'),
                n_train=int(1000*fraction), n_train_per_class={'a': int(800*fraction), 'b': int(200*fraction)},
                test=dict(accuracy=acc, macro_f1=acc - 0.1), history=[{}])

def test_efficiency_table_and_crossing_on_known_records():
    fr = [1.0, 0.5, 0.25, 0.1, 0.05]
    pt_mean = dict(zip(fr, [0.95, 0.92, 0.90, 0.70, 0.60]))
    recs = [rec(True, f, s, pt_mean[f] + d) for f in fr for s, d in zip(range(3), (-0.01, 0, 0.01))]
    recs += [rec(False, f, s, 0.80 - (1 - f)*0.2 + d) for f in fr for s, d in zip(range(3), (-0.02, 0, 0.02))]
    t = tables.efficiency_table(recs)
    row = t[(t.fraction == 1.0) & (t.init == 'pretrained')].iloc[0]
    assert row.n_train == 1000 and row.n_min_class == 200 and row.seeds == 3
    assert row.acc_mean == pytest.approx(0.95) and row.acc_diff == pytest.approx(0.15)
    assert row.acc_diff_lo95 < 0.15 < row.acc_diff_hi95
    assert row.test_accuracy == '0.950 ± 0.010'
    c = tables.crossing(recs, 'test_accuracy', n_boot=200)
    assert c['level'] == pytest.approx(0.80) and c['fraction'] == pytest.approx(np.sqrt(0.1*0.25))
    assert c['lo95'] <= c['fraction'] <= c['hi95']

def test_data_efficiency_configs_cover_every_arm_fraction_and_seed(tmp_path):
    cfgs = suites.data_efficiency('quick', dataset='synthetic', results=tmp_path)
    cells = {(c.pretrained, c.fraction, c.seed) for c in cfgs}
    assert len(cfgs) == len(cells) == 2*5*3
    scratch = [c for c in cfgs if not c.pretrained]
    assert all(c.strategy == 'full-finetune' and c.lr > cfgs[0].lr and c.patience == c.epochs for c in scratch)
    full = {c.pretrained: c.epochs for c in cfgs if c.fraction == 1.0}
    for c in cfgs:  # every run gets at least a quarter of the full-data optimizer steps and trains its whole budget
        assert c.epochs*c.fraction >= 0.25*full[c.pretrained] - 0.5 and c.epochs >= full[c.pretrained] and c.patience == c.epochs
    assert len({c.key() for c in cfgs}) == 30

def test_both_arms_at_one_seed_see_identical_subsets(tmp_path):
    src = load_source('synthetic', 32)
    cfgs = suites.data_efficiency('quick', dataset='synthetic', results=tmp_path, fractions=(0.25,), seeds=(7,))
    assert len(cfgs) == 2
    a, b = (StratifiedSubsetSplitter(src, c.fraction, c.seed)(None) for c in cfgs)
    assert a == b

def test_architectures_and_strategies_suites():
    assert {c.arch for c in suites.architectures('quick')} == {'efficientnet_lite0', 'mobilenetv2', 'vit_small_dinov2'}
    st = suites.strategies('quick', arch='mobilenetv2')
    assert {(c.strategy, c.augment) for c in st} == {(s, a) for s in ('feature-extraction', 'full-finetune', 'gradual-unfreeze',
                                                                     'discriminative-lr', 'fine-tune') for a in (False, True)}

def test_majority_baseline_matches_the_metrics_of_a_majority_predictor():
    from ftl.evaluate import test_metrics, majority_baseline
    y = np.array([0]*6 + [1]*3 + [2]*1)
    m = test_metrics(y, np.zeros_like(y), ['a', 'b', 'c'])  # always the most frequent class
    assert majority_baseline(m) == dict(acc=pytest.approx(m['accuracy']), f1=pytest.approx(m['macro_f1']))
