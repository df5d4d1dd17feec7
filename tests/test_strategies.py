import numpy as np, pytest, torch
from ftl.train import Config, build_learner, History
from ftl.strategies import STRATEGIES
from ftl.data import make_dls
from ftl.strategies import augmentations

def cfg(**kw): return Config(**{**dict(dataset='synthetic', size=32, arch='efficientnet_lite0', epochs=1, bs=16), **kw})

def fit(strategy, **kw):
    c = cfg(strategy=strategy, **kw)
    learn, _ = build_learner(c)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    hist = History()
    with learn.no_bar(), learn.no_logging(): STRATEGIES[strategy](learn, c, [hist])
    return learn, before, hist

EPOCHS = {'feature-extraction': 1, 'gradual-unfreeze': 4, 'discriminative-lr': 1, 'full-finetune': 1, 'fine-tune': 2}  # the fewest each runs

@pytest.fixture(scope='module')
def fitted():
    "Each strategy fitted once, at the fewest epochs it runs: (learner, weights before, history), shared by its behaviour and schedule tests"
    runs = {}
    def get(strategy):
        if strategy not in runs: runs[strategy] = fit(strategy, epochs=EPOCHS[strategy])
        return runs[strategy]
    return get

def test_feature_extraction_changes_only_the_head(fitted):
    learn, before, hist = fitted('feature-extraction')
    after = learn.model.state_dict()
    body = [k for k in after if k.startswith('0.')]
    assert any('running_mean' in k for k in body)
    assert all(torch.equal(before[k], after[k]) for k in body)  # weights and BatchNorm running statistics untouched
    assert not torch.equal(before['1.2.weight'], after['1.2.weight'])  # the linear head trained
    assert hist.stages[0]['trainable_groups'] == [False, False, False, True]
    assert hist.stages[0]['trainable_params'] == sum(p.numel() for p in learn.model[1].parameters())

def test_gradual_unfreeze_goes_top_down_until_all_train(fitted):
    learn, before, hist = fitted('gradual-unfreeze')
    assert [s['trainable_groups'] for s in hist.stages] == [
        [False, False, False, True], [False, False, True, True], [False, True, True, True], [True, True, True, True]]
    assert all(p.requires_grad for p in learn.model.parameters())

def test_discriminative_lrs_differ_per_group_and_grow_toward_the_head(fitted):
    learn, before, hist = fitted('discriminative-lr')
    lrs = hist.stages[0]['peak_lr']
    assert len(lrs) == 4 and all(a < b for a, b in zip(lrs, lrs[1:]))
    assert np.isclose(lrs[-1]/lrs[0], 100, rtol=0.01)
    assert all(g for g in hist.stages[0]['trainable_groups'])

def test_full_finetune_trains_everything_with_one_lr(fitted):
    learn, before, hist = fitted('full-finetune')
    assert len(set(np.round(hist.stages[0]['peak_lr'], 12))) == 1 and all(hist.stages[0]['trainable_groups'])
    after = learn.model.state_dict()
    assert not torch.equal(before['0.model.conv_stem.weight'], after['0.model.conv_stem.weight'])
    assert not torch.equal(before['1.2.weight'], after['1.2.weight'])  # the head trains too

def test_fastai_fine_tune_is_head_then_all(fitted):
    learn, before, hist = fitted('fine-tune')
    assert [s['trainable_groups'] for s in hist.stages] == [[False, False, False, True], [True]*4]
    assert not torch.equal(before['1.2.weight'], learn.model.state_dict()['1.2.weight'])

def test_augmentation_changes_the_training_pipeline_only(synthetic):
    plain, aug = make_dls(synthetic, bs=16), make_dls(synthetic, bs=16, augment=augmentations('fastai'))
    xb = plain.valid.one_batch()[0]
    # validation (and test) never augmented: fastai's affine step only resamples them with the identity grid
    assert torch.allclose(aug.valid.one_batch()[0], xb, atol=1e-5)
    b_plain = next(iter(plain.train.new(shuffle=False)))[0]
    torch.manual_seed(0)
    b_aug = next(iter(aug.train.new(shuffle=False)))[0]
    assert b_plain.shape == b_aug.shape and not torch.allclose(b_plain, b_aug)
    assert len(aug.train.after_batch.fs) > len(plain.train.after_batch.fs)


def test_dihedral_augmentation_gives_only_the_eight_symmetries_on_training_batches(synthetic):
    from ftl.strategies import AUGMENTATIONS
    from fastai.vision.all import Dihedral
    plain = make_dls(synthetic, bs=16)
    geo = make_dls(synthetic, bs=16, augment=[Dihedral(p=1.0)])  # the geometric part of the 'dihedral' arm alone
    xb = next(iter(plain.train.new(shuffle=False)))[0]
    seen = set()
    for seed in range(4):
        torch.manual_seed(seed)
        yb = next(iter(geo.train.new(shuffle=False)))[0]
        for x, y in zip(xb, yb):
            syms = [torch.rot90(x, k, (1, 2)) for k in range(4)] + [torch.rot90(x.flip(2), k, (1, 2)) for k in range(4)]
            err = [float((y - s).abs().max()) for s in syms]
            assert min(err) < 1e-3  # exactly one of the 8 symmetries (up to interpolation noise)
            seen.add(int(np.argmin(err)))
    assert len(seen) >= 6  # and it really draws among them
    assert torch.allclose(make_dls(synthetic, bs=16, augment=augmentations('dihedral')).valid.one_batch()[0], plain.valid.one_batch()[0], atol=1e-5)
    full = make_dls(synthetic, bs=16, augment=augmentations('dihedral'))
    names = [type(t).__name__ for t in full.train.after_batch.fs]
    assert {'Dihedral', 'Brightness', 'Contrast'} <= set(names) and AUGMENTATIONS['dihedral'][2]['max_lighting'] <= 0.1

@pytest.mark.parametrize('strategy', list(STRATEGIES))
def test_recorded_schedule_is_what_fastai_applied(strategy, fitted):
    learn, before, hist = fitted(strategy)
    assert sum(s['epochs_max'] for s in hist.stages) == EPOCHS[strategy]  # the run's epochs, across its stages
    for s in hist.stages:  # per stage: the scheduler's first lr is the first batch's, its peak bounds (and nearly meets) the batches'
        assert np.allclose(s['applied_first_lr'], s['start_lr'], rtol=1e-6)
        assert all(a <= p*(1 + 1e-6) and a >= 0.5*p for a, p in zip(s['applied_peak_lr'], s['peak_lr']))
        assert np.allclose(np.array(s['peak_lr'])/np.array(s['start_lr']), s['div'])
    if strategy == 'fine-tune':  # fastai's fine_tune: frozen stage pct_start 0.99, then pct_start 0.3, div 5 at base_lr / 2
        frozen, unfrozen = hist.stages
        assert frozen['pct_start'] == pytest.approx(0.99, abs=1e-3) and frozen['div'] == pytest.approx(25)
        assert unfrozen['pct_start'] == pytest.approx(0.3, abs=1e-3) and unfrozen['div'] == pytest.approx(5)
        assert unfrozen['peak_lr'][-1] == pytest.approx(cfg().lr/2) and unfrozen['peak_lr'][0] == pytest.approx(cfg().lr/200)
    else: assert all(s['pct_start'] == pytest.approx(0.25, abs=1e-3) for s in hist.stages)
