import numpy as np, pandas as pd, pytest
from ftl import tables
from ftl.records import records_frame

def hist(train, valid): return [dict(epoch=i + 1, stage=1, train_loss=t, valid_loss=v, accuracy=0.5, macro_f1=0.5, lr=[1e-3])
                                for i, (t, v) in enumerate(zip(train, valid))]

def test_overfitting_signals(tiny):
    from dataclasses import replace
    r = replace(tiny[2], history=hist([1.0, 0.6, 0.3, 0.1], [0.9, 0.7, 0.8, 1.0]), best_epoch=2)
    s = records_frame([r]).iloc[0]
    assert (s.gap_best, s.gap_last, s.epochs_after_best, s.min_valid_loss_epoch, s.valid_up_train_down) == (
        pytest.approx(0.1), pytest.approx(0.9), 2, 2, True)
    assert not records_frame([replace(r, history=hist([1.0, 0.8], [0.9, 0.7]), best_epoch=2)]).iloc[0].valid_up_train_down
    # restored last (no early stop): the rise is measured from the lowest validation loss, and noise below 10 % is not a rise
    assert records_frame([replace(r, best_epoch=4)]).iloc[0].valid_up_train_down
    assert not records_frame([replace(r, history=hist([1.0, 0.6, 0.3, 0.1], [0.9, 0.7, 0.72, 0.75]), best_epoch=4)]).iloc[0].valid_up_train_down

def test_crossing_fraction_interpolates_on_log_fraction():
    f = [0.05, 0.1, 0.25, 0.5, 1.0]
    # reaches 0.80 halfway (in log space) between 0.1 (0.70) and 0.25 (0.90)
    assert tables.crossing_fraction(f, [0.6, 0.7, 0.9, 0.92, 0.95], 0.80) == pytest.approx(np.sqrt(0.1*0.25))
    assert tables.crossing_fraction(f, [0.85, 0.9, 0.9, 0.92, 0.95], 0.80) == 0.05  # already at the smallest
    assert np.isnan(tables.crossing_fraction(f, [0.5, 0.6, 0.6, 0.7, 0.75], 0.80))  # never reached

def row(pretrained, fraction, seed, acc):
    return dict(init='pretrained' if pretrained else 'scratch', fraction=fraction, seed=seed, strategy='s', lr=1e-3, epochs=8,
                patience=8, n_train=int(1000*fraction), n_min_class=int(200*fraction), test_accuracy=acc,
                test_macro_f1=acc - 0.1, train_seconds=60.)

def test_efficiency_table_and_crossing_on_known_runs():
    fr = [1.0, 0.5, 0.25, 0.1, 0.05]
    pt_mean = dict(zip(fr, [0.95, 0.92, 0.90, 0.70, 0.60]))
    df = pd.DataFrame([row(True, f, s, pt_mean[f] + d) for f in fr for s, d in zip(range(3), (-0.01, 0, 0.01))] +
                      [row(False, f, s, 0.80 - (1 - f)*0.2 + d) for f in fr for s, d in zip(range(3), (-0.02, 0, 0.02))] +
                      [{**row(True, f, s, pt_mean[f] - 0.05 + d), 'strategy': 'feature-extraction'} for f in fr for s, d in zip(range(3), (0.01, 0, -0.01))])
    t = tables.efficiency_table(df)
    probe = t[t.init == 'frozen probe']
    assert len(probe) == 5 and (probe.reference == 'fine-tuned').all()  # freezing is measured against fine-tuning, seed by seed
    assert probe.test_accuracy_diff.tolist() == pytest.approx([-0.05]*5) and (probe.test_accuracy_diff_hi95 < 0).all()
    r = t[(t.fraction == 1.0) & (t.init == 'fine-tuned')].iloc[0]
    assert r.n_train == 1000 and r.n_min_class == 200 and r.seeds == 3
    assert r.test_accuracy_mean == pytest.approx(0.95) and r.test_accuracy_std == pytest.approx(0.01)
    assert r.test_accuracy_diff == pytest.approx(0.15) and r.test_accuracy_diff_lo95 < 0.15 < r.test_accuracy_diff_hi95
    assert tables.formatted(t).test_accuracy.iloc[0] == '0.950 ± 0.010'  # formatted only for reading
    c = tables.crossing(df, 'test_accuracy', n_boot=200)
    assert c['level'] == pytest.approx(0.80) and c['fraction'] == pytest.approx(np.sqrt(0.1*0.25))
    assert c['lo95'] <= c['fraction'] <= c['hi95']

def test_seed_level_statistics_take_the_seed_as_the_unit():
    fr = [1.0, 0.5, 0.25, 0.1, 0.05]
    gain = {0: 0.02, 1: 0.06, 2: 0.10}  # per seed, a gain that grows by `seed/100` per halving of the data
    halvings = dict(zip(fr, -np.log2(fr)))
    df = pd.DataFrame([row(True, f, s, 0.7 + gain[s] + s/100*halvings[f]) for f in fr for s in range(3)] +
                      [row(False, f, s, 0.7) for f in fr for s in range(3)])
    lvl = tables.seed_level(df)
    means = [gain[s] + s/100*np.mean(list(halvings.values())) for s in range(3)]
    assert lvl['n'] == 3 and lvl['mean'][0] == pytest.approx(np.mean(means)) and lvl['slope'][0] == pytest.approx(0.01)
    from scipy import stats  # the interval has 2 degrees of freedom (3 seeds), not 14 (15 pooled pairs)
    assert lvl['mean'][2] - lvl['mean'][0] == pytest.approx(stats.t.ppf(0.975, 2)*np.std(means, ddof=1)/np.sqrt(3))
    c = tables.crossing(df, 'test_accuracy', n_boot=300)  # scratch never catches up: found at the smallest fraction
    assert c['seeds'] == 3 and c['fraction'] == 0.05
    assert tables.seed_level(df[df.seed != 2].iloc[1:])['n'] == 1  # a seed missing a fraction drops out whole

def test_formatting_writes_integers_as_integers_and_means_with_std(tmp_path):
    df = pd.DataFrame(dict(arch=['a'], seeds=[3], epochs=[7.0], test_accuracy_mean=[0.71234], test_accuracy_std=[0.0123], lr=[0.002]))
    md = tables.formatted(df)
    assert list(md.columns) == ['arch', 'seeds', 'epochs', 'test_accuracy', 'lr']
    assert md.iloc[0].tolist() == ['a', 3, '7', '0.712 ± 0.012', '0.002']
    tables.write_table(df, tmp_path/'t')
    assert pd.read_csv(tmp_path/'t.csv').test_accuracy_mean.iloc[0] == pytest.approx(0.71234)

def test_majority_baseline_matches_the_metrics_of_a_majority_predictor():
    from ftl.evaluate import test_metrics, majority_baseline
    y = np.array([0]*6 + [1]*3 + [2]*1)
    m = test_metrics(y, np.zeros_like(y), ['a', 'b', 'c'])  # always the most frequent class
    assert majority_baseline(m) == dict(test_accuracy=pytest.approx(m['accuracy']), test_macro_f1=pytest.approx(m['macro_f1']))

def test_domain_gap_is_the_fine_tuned_mean_minus_the_probe_mean_per_architecture():
    def runs(f1s, arch): return [dict(arch=arch, family='cnn', pretraining='p', size=128, seed=s, test_accuracy=f, test_macro_f1=f,
                                      valid_macro_f1=f, train_seconds=1.) for s, f in enumerate(f1s)]
    probe = pd.DataFrame(runs([0.50, 0.52, 0.54], 'a') + runs([0.60, 0.60, 0.60], 'b'))
    tuned = pd.DataFrame(runs([0.70, 0.72, 0.74], 'a') + runs([0.61, 0.63, 0.65], 'b'))
    t = tables.domain_gap_table(probe, tuned).set_index('arch')
    assert t.test_macro_f1_gap.to_dict() == {'a': pytest.approx(0.20), 'b': pytest.approx(0.03)}
    assert t.loc['a', 'test_macro_f1_std_probe'] == pytest.approx(0.02) and t.loc['b', 'seeds_finetuned'] == 3

def test_strategy_table_rows_follow_the_strategy_order_and_the_presets_arms_not_the_alphabet():
    from ftl.train import strategy_order
    runs = [dict(arch='m', strategy=st, augment=a, size=128, seed=s, test_accuracy=.5, test_macro_f1=.5, valid_macro_f1=.5, train_seconds=1.)
            for st in ('full-finetune', 'feature-extraction') for a in ('none', 'dihedral', 'fastai') for s in (0, 1)]
    t = tables.strategy_table(pd.DataFrame(runs), strategy_order(('none', 'dihedral')))
    assert list(zip(t.strategy, t.augment)) == [('feature-extraction', 'none'), ('feature-extraction', 'dihedral'), ('feature-extraction', 'fastai'),
                                                ('full-finetune', 'none'), ('full-finetune', 'dihedral'), ('full-finetune', 'fastai')]

def test_learning_rates_read_as_short_scientific_numbers_and_frozen_groups_as_dashes():
    assert [tables.sci(x) for x in (2e-3, 4.6e-5, 1e5, 0.00043)] == ['2e-3', '4.6e-5', '1e5', '4.3e-4']
    assert tables._lrs([1e-5, 2e-3], [False, True]) == '– / 2e-3'

def test_precision_pairs_match_runs_that_differ_only_in_the_precision_that_ran():
    from types import SimpleNamespace
    base = dict(dataset='elpv', arch='vit', size=126, epochs=12, strategy='fine-tune', augment='none', fraction=1.0, class_weights=False)
    def row(p, f, t, **change):
        config = {**base, 'precision': 'bf16' if p == 'bf16' else 'auto', **change}
        return dict(config, train_path='end-to-end', valid_macro_f1=f, test_macro_f1=f, train_seconds=t,
                    record=SimpleNamespace(config=config, hyperparams=dict(precision=p)))
    rows = [row('fp32', .60, 100, seed=0), row('bf16', .62, 40, seed=0), row('fp32', .61, 110, seed=1), row('bf16', .60, 50, seed=1),
            row('bf16', .70, 45, seed=2),                                     # no fp32 twin
            row('fp32', .90, 1, seed=0, size=224),                            # another cell
            row('fp32', .10, 7, seed=1, class_weights=True)]                  # shares the listed fields of seed 1, not its config
    p = tables.precision_pairs(pd.DataFrame(rows))
    assert list(p.index.get_level_values('seed')) == [0, 1] and set(p.index.get_level_values('size')) == {126}
    assert p[('train_seconds', 'fp32')].tolist() == [100, 110] and p[('valid_macro_f1', 'bf16')].tolist() == [.62, .60]

def test_the_appendix_merges_configs_that_differ_only_in_their_share_of_data_never_in_a_setting():
    from ftl.tables import merge_fractions
    row = lambda f, ep, lr='2e-3', loss='cross-entropy': dict(arch='m', strategy='fine-tune', fraction=f, epochs=ep, loss=loss,
                                                               schedule=f'stage 1: {ep} ep, lr {lr}, warm-up 25%', early_stopping=f'off (patience {ep})',
                                                               restored=f'last epoch: {ep} of {ep}', seeds='0,1,2')
    h = pd.DataFrame([row(1.0, 12), row(0.5, 12), row(0.05, 60), row(1.0, 12, lr='1e-2'), row(0.5, 12, loss='ordinal')])
    m = merge_fractions(h)
    assert len(m) == 3 and m.iloc[0].fraction == [1.0, 0.5, 0.05] and m.iloc[0].epochs == [12, 12, 60]
    assert m.iloc[0].schedule == 'stage 1: 12 ep, lr 2e-3, warm-up 25%'  # the largest share's texts
    assert [r.fraction for r in m.itertuples()][1:] == [[1.0], [0.5]]    # another lr, another loss: rows of their own
