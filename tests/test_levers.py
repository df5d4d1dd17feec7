"Levers: the orientation census, the flips-only augmentation, the ordinal soft-label loss and its guard"
import numpy as np, pytest, torch, torch.nn.functional as F
from fastai.vision.all import Dihedral, TensorImage
from ftl.config import Config
from ftl.errors import ConfigError
from ftl.losses import OrdinalSoftLabels, make_loss
from ftl.strategies import augmentations, flips_draw, FLIPS
from ftl.studies.levers import orientation_census, fitting_augmentation
from ftl.train import build_learner

def stripes(n, rng, horizontal=True, size=48):
    "Noisy images with three dark lines across them, horizontal or vertical"
    x = rng.uniform(150, 200, (n, size, size))
    for r in (12, 24, 36): x[:, r, :] = 40
    return x if horizontal else x.transpose(0, 2, 1)

def test_census_counts_line_orientation_and_picks_flips_only_when_images_agree():
    rng = np.random.default_rng(0)
    imgs = np.concatenate([stripes(30, rng), stripes(5, rng, horizontal=False), rng.uniform(0, 255, (7, 48, 48))])
    assert orientation_census(imgs) == dict(horizontal=30, vertical=5, none=7)
    assert fitting_augmentation(orientation_census(imgs)) == 'dihedral'
    assert fitting_augmentation(orientation_census(imgs[np.r_[0:30, 35:42]])) == 'flips'
    assert orientation_census(np.repeat(stripes(4, rng)[..., None], 3, -1))['horizontal'] == 4  # RGB images too

def test_flips_arm_flips_but_never_turns_a_quarter():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 8, 8); x[:, :, 1, :] = 1  # a horizontal line in row 1
    tfm = [t for t in augmentations('flips') if isinstance(t, Dihedral)][0]
    y = tfm(TensorImage(x), split_idx=0)
    rows = y[:, 0].sum(2) > 7  # image, row: the row is a full line
    assert rows.any(1).all(), 'a quarter-turn made a horizontal line vertical'
    assert rows[:, 1].any() and rows[:, 6].any(), 'never flipped vertically (or never left alone)'
    assert set(flips_draw(x).tolist()) <= set(FLIPS)

def test_ordinal_soft_labels_cost_a_near_miss_less_than_a_far_one():
    loss = OrdinalSoftLabels(4)
    q = loss.soft_labels(torch.tensor([0, 2]))
    assert torch.allclose(q.sum(1), torch.ones(2)) and q.argmax(1).tolist() == [0, 2] and q[1, 1] == q[1, 3]
    targ = torch.tensor([0])
    near, far = (loss(10*F.one_hot(torch.tensor([k]), 4).float(), targ) for k in (1, 3))
    assert near < far
    ce, sharp = make_loss('cross-entropy', 4), OrdinalSoftLabels(4, scale=50.)
    out = torch.randn(5, 4); t = torch.tensor([0, 1, 2, 3, 1])
    assert torch.allclose(sharp(out, t), ce(out, t), atol=1e-5)  # a sharp kernel is the one-hot label
    w = torch.tensor([1., 2., 3., 4.])
    assert torch.allclose(OrdinalSoftLabels(4, weight=w, reduction='none')(out, t), loss.__class__(4, reduction='none')(out, t)*w[t])

def test_ordinal_loss_refused_for_classes_no_card_orders():
    with pytest.raises(ConfigError, match="ordered: true"):
        build_learner(Config(dataset='synthetic', size=32, arch='mobilenetv2', loss='ordinal'))
    with pytest.raises(ConfigError, match="Config.loss"):
        Config(loss='focal').validate()

def test_the_headline_adopts_a_lever_only_beyond_one_standard_error_of_its_paired_gain():
    from types import SimpleNamespace as R
    from ftl.studies.levers import lever_gains, adopted
    run = lambda seed, f1, **ch: R(config={'seed': seed, 'loss': 'cross-entropy', **ch}, best=dict(macro_f1=f1))
    base = [run(s, f) for s, f in enumerate((0.63, 0.58, 0.64))]
    noisy = [run(s, f, loss='ordinal') for s, f in enumerate((0.63, 0.66, 0.58))]     # ahead in mean, inside one standard error
    steady = [run(s, f + 0.02, epochs=24) for s, f in enumerate((0.63, 0.58, 0.64))]  # +0.02 on every seed
    gains = lever_gains(base, noisy + steady)
    (g_noisy, se_noisy), (g_steady, se_steady) = gains.values()
    assert g_noisy > 0 and g_noisy < se_noisy and g_steady == pytest.approx(0.02) and se_steady < 1e-9
    assert adopted({k: g for k, g in gains.items() if g == (g_noisy, se_noisy)}) is None  # the best mean alone would take it
    assert adopted(gains) == [k for k in gains if gains[k] == (g_steady, se_steady)][0]
    assert adopted({}) is None
