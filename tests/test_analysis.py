import json, shutil
from dataclasses import replace
import numpy as np, pandas as pd, pytest, torch
from torch import nn
from scipy import ndimage
from ftl.analysis import (image_quality, error_evidence, categorize, CATEGORIES, class_activation_maps, out_of_sample_probs,
                          label_issues, ordinal_errors, select_errors)

rng = np.random.default_rng(0)

def test_blurred_copy_is_flagged_as_poor_quality():
    sharp = rng.integers(0, 255, (32, 32)).astype(np.uint8)
    blurred = ndimage.gaussian_filter(sharp.astype(float), 2).astype(np.uint8)
    q = image_quality([sharp, blurred])
    assert q.sharpness[1] < q.sharpness[0]/10
    train = image_quality(rng.integers(0, 255, (30, 32, 32)).astype(np.uint8))
    issues = pd.DataFrame(dict(label_issue=[False, False], label_quality=[0.9, 0.9]))
    ev = error_evidence([[0.2, 0.8], [0.2, 0.8]], [0, 0], q, train, np.zeros(30, int), issues)
    assert ev.sharpness_z[1] < -2.5 and categorize(ev.iloc[1]) == 'unusual image quality' and categorize(ev.iloc[0]) != 'unusual image quality'

def test_categories_follow_the_written_rules_in_order():
    base = dict(sharpness_z=0., contrast_z=0., exposure_z=0., label_issue=False, ordinal_distance=1)
    assert categorize({**base, 'label_issue': True}) == 'possible labelling error'
    assert categorize(base) == 'ambiguous or visually similar'
    assert categorize({**base, 'ordinal_distance': 3}) == 'genuine domain difficulty'
    assert categorize({**base, 'contrast_z': 4., 'label_issue': True}) == 'unusual image quality'

def test_gallery_shows_every_category_that_occurs_highest_loss_first():
    cats = ['ambiguous or visually similar']*20 + ['genuine domain difficulty']*3 + ['possible labelling error']*2 + ['unusual image quality']
    errors = pd.DataFrame(dict(category=cats, loss=np.r_[np.linspace(9, 5, 20), [4, 3, 2], [8.5, 1], [0.5]], image_id=range(26)))
    errors = errors.sort_values('loss', ascending=False, kind='stable').reset_index(drop=True)  # as failure_table orders them
    g = select_errors(errors, 12)
    assert len(g) == 12 and set(g.category) == set(cats) and g.loss.is_monotonic_decreasing
    assert (g.category == 'ambiguous or visually similar').sum() == 12 - 3 - 2 - 1  # the rest go to the most frequent, by loss
    top = errors[errors.category == 'ambiguous or visually similar'].head(6)
    assert set(top.image_id) <= set(g.image_id)  # within a category, the highest losses
    assert len(select_errors(errors.head(5), 12)) == 5

def test_ordinal_distances_read_the_confusion_matrix_both_ways():
    cm = [[10, 2, 0, 1],   # true level 0: 2 adjacent, 1 at the far end
          [3, 5, 1, 0],    # 4 adjacent
          [0, 2, 4, 2],    # 4 adjacent
          [4, 1, 0, 9]]    # 4 at the far end, 1 two levels off
    o = ordinal_errors(cm, ['a', 'b', 'c', 'd'])
    assert (o['errors'], o['adjacent'], o['far'], o['ends']) == (16, 10, 6, 5)
    assert o['adjacent_share'] == pytest.approx(10/16) and o['ends_share'] == pytest.approx(5/16)
    assert ordinal_errors([[5, 0], [0, 5]], ['x', 'y'])['errors'] == 0

def test_cleanlab_flags_deliberately_flipped_labels():
    x = np.concatenate([rng.normal(c*3, 1, (100, 5)) for c in range(3)]); y = np.repeat(np.arange(3), 100)
    flipped = rng.choice(300, 20, replace=False)
    noisy = y.copy(); noisy[flipped] = (y[flipped] + rng.integers(1, 3, 20)) % 3
    found = np.flatnonzero(label_issues(noisy, out_of_sample_probs(x, noisy)).label_issue)
    precision, recall = np.isin(found, flipped).mean(), np.isin(flipped, found).mean()
    assert precision >= 0.8 and recall >= 0.8, (precision, recall)

def test_probe_probabilities_barely_move_when_the_features_change_in_their_last_bit():
    "Features from another machine or thread count may differ in the last bit: the probe's fit must not amplify that into other flags"
    r = np.random.default_rng(0)
    y = r.integers(0, 4, 800); x = (r.normal(size=(800, 256)) + 0.3*y[:, None]*r.normal(size=256)).astype(np.float32)
    nudged = (x*(1 + r.choice([-1, 1], x.shape)*np.float32(2**-23))).astype(np.float32)  # one ulp up or down, every feature
    assert np.abs(out_of_sample_probs(x, y) - out_of_sample_probs(nudged, y)).max() < 1e-4  # sklearn's defaults: 2e-3

def test_a_rerun_with_float_noise_rewrites_no_table_but_a_changed_word_flag_or_number_does(tmp_path):
    "fp32 inference on another CPU moves probabilities by ~1e-6 (summation order): the saved table stays byte for byte; a material change, bf16's ~1e-2 included, replaces it"
    from ftl.analysis import keep_table, NOISE
    saved = pd.DataFrame(dict(image_id=['a.png', 'b.png'], label_issue=[True, False], confidence=[0.5484, 0.99948], loss=[13.62, 6.80]))
    path = tmp_path/'errors.csv'; saved.to_csv(path, index=False); before = path.read_bytes()
    noisy = saved.assign(confidence=[0.5484 + 2e-6, 0.99948 - 1e-6], loss=[13.62 + 4e-5, 6.80 - 2e-5])
    kept = keep_table(noisy, path)
    assert path.read_bytes() == before and kept.confidence.tolist() == [0.5484, 0.99948]  # the caller goes on with what the file holds
    assert kept.attrs['rewritten'] is False  # so the figures that print its numbers may keep theirs
    for changed in (saved.assign(image_id=['a.png', 'c.png']), saved.assign(label_issue=[False, False]),
                    saved.assign(confidence=[0.5484 + 3*NOISE['atol'], 0.99948]), saved.assign(confidence=[0.5408, 0.99949])):
        assert keep_table(changed, path).attrs['rewritten'] is True  # the figures printing its numbers are redrawn
        assert path.read_bytes() != before; saved.to_csv(path, index=False)

def test_a_figure_redrawn_with_a_few_digits_changed_keeps_its_saved_files_and_a_new_picture_replaces_them(tmp_path):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from ftl.figures import save
    from ftl.analysis import same_picture
    def draw(text, img):
        fig, ax = plt.subplots(figsize=(4, 4)); ax.imshow(img, cmap='gray'); ax.set_title(text); return fig
    img = rng.random((64, 64))
    save(draw('cell0318 (0.55)', img), tmp_path/'g', same=same_picture)
    saved = {s: (tmp_path/f'g{s}').read_bytes() for s in ('.png', '.pdf')}
    save(draw('cell0318 (0.54)', img), tmp_path/'g', same=same_picture)
    assert {s: (tmp_path/f'g{s}').read_bytes() for s in ('.png', '.pdf')} == saved
    save(draw('cell0318 (0.55)', img[::-1]), tmp_path/'g', same=same_picture)
    assert all((tmp_path/f'g{s}').read_bytes() != saved[s] for s in ('.png', '.pdf'))
    assert not list(tmp_path.glob('.tmp-*'))

def test_gradcam_highlights_the_quadrant_that_decides_the_class():
    torch.manual_seed(0)
    def batch(n):
        x = torch.rand(n, 3, 32, 32)*0.2; y = torch.randint(0, 2, (n,))
        x[y == 1, :, :16, :16] += 0.8  # class 1: a bright top-left quadrant, the only signal
        return x, y
    body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
    model = nn.Sequential(body, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(150):
        x, y = batch(32); loss = nn.functional.cross_entropy(model(x), y); opt.zero_grad(); loss.backward(); opt.step()
    x, y = batch(64)
    assert (model(x).argmax(1) == y).float().mean() > 0.95
    ones = x[y == 1][:8]
    maps = class_activation_maps(model, ones, [1]*len(ones), target=(body[2], None))
    inside = maps[:, :16, :16].sum((1, 2))/maps.sum((1, 2)).clip(1e-9)
    assert maps.shape == (len(ones), 32, 32) and inside.mean() > 0.6, inside

def analysis_study(results):
    "A study of one tiny candidate (mobilenetv2, one epoch) on synthetic data, written to `results`"
    from ftl.studies import Study
    return Study(dataset='synthetic', arch='mobilenetv2', preset='tiny', results=str(results), fixed=dict(epochs=1, strategy='full-finetune', seed=0))

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "The architectures suite run once (its learner exported); each test analyses a copy of its results folder"
    from ftl.studies import SUITES, run_suite
    results = tmp_path_factory.mktemp('analysis')/'results'
    run_suite(SUITES['architectures'], analysis_study(results))
    return results

def test_analysis_suite_reloads_the_exported_learner_and_categorises(trained, tmp_path):
    from ftl.studies import SUITES
    from ftl.records import read_records
    shutil.copytree(trained, tmp_path/'results')
    study = analysis_study(tmp_path/'results')
    recs = read_records(tmp_path/'results'/'architectures')
    assert [r.key for r in recs] == [c.key() for c in SUITES['architectures'].configs(study)]  # the candidates: one run here
    rec = recs[0]
    assert (study.layout.models/f'{rec.key}.pkl').exists()  # the suite kept its learner
    SUITES['analysis'].study(study)
    out = tmp_path/'results'/'analysis'
    assert (out/'model.pkl').exists() and json.loads((out/'model.json').read_text())['key'] == rec.key  # shipped beside the analysis
    errors = pd.read_csv(out/'errors.csv', keep_default_na=False)
    assert 0 < len(errors) <= 12 and set(errors.category) <= set(CATEGORIES) and (errors.true != errors.pred).all()
    assert {'image_id', 'confidence', 'margin', 'ordinal_distance', 'label_issue', 'sharpness_z', 'category'} <= set(errors.columns)
    summary = json.loads((out/'summary.json').read_text())
    assert sum(summary['label_issues'].values()) == pd.read_csv(out/'label_issues.csv').label_issue.sum()
    for f in ('confusion_best', 'error_gallery', 'top_losses'): assert (study.layout.figures/f'{f}.png').exists()
    # a clean clone has no models/: the shipped model is used, and the analysis reproduces
    shutil.rmtree(study.layout.models)
    before = (out/'errors.csv').read_text()
    SUITES['analysis'].study(study)
    assert (out/'errors.csv').read_text() == before

def test_two_analysis_runs_in_separate_processes_write_identical_files(trained, tmp_path, ftl_cache):
    "A clean clone reproduces the committed analysis byte for byte: fresh processes (one thread, then two), each computing the probe's features anew"
    import os, subprocess, sys
    from pathlib import Path
    written = []
    for threads in ('1', '2'):
        run = tmp_path/f'threads-{threads}'
        shutil.copytree(trained, run/'results')
        shutil.copytree(ftl_cache, run/'cache', ignore=shutil.ignore_patterns('features'))  # decoded data and weights, no features
        p = subprocess.run([sys.executable, 'experiments.py', '--suite', 'analysis', '--dataset', 'synthetic', '--arch', 'mobilenetv2', '--preset', 'tiny',
                            '--results', str(run/'results'), '--epochs', '1', '--strategy', 'full-finetune', '--seed', '0'],
                           cwd=Path(__file__).resolve().parents[1], env={**os.environ, 'OMP_NUM_THREADS': threads, 'FTL_CACHE': str(run/'cache')},
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-3000:]
        assert list((run/'cache'/'features').glob('*.npy')), 'the probe read cached features instead of computing them'
        written.append({f.relative_to(run/'results').as_posix(): f.read_bytes() for f in sorted((run/'results').rglob('*')) if f.is_file()})
    made = {'analysis/errors.csv', 'analysis/label_issues.csv', 'analysis/summary.json', 'analysis/most_confused.csv',
            'figures/error_gallery.png', 'figures/error_gallery.pdf', 'figures/top_losses.png', 'figures/confusion_best.pdf'}
    assert made <= set(written[0]) and written[0].keys() == written[1].keys()
    assert [f for f in written[0] if written[0][f] != written[1][f]] == []

def test_analysis_without_the_exported_learner_says_what_to_run_and_never_retrains(trained, tmp_path, monkeypatch):
    import importlib
    from ftl.studies import SUITES
    from ftl.records import read_records
    from ftl.errors import UserError
    shutil.copytree(trained, tmp_path/'results', ignore=shutil.ignore_patterns('models'))  # nothing exported, nothing shipped
    study, rec = analysis_study(tmp_path/'results'), read_records(trained/'architectures')[0]
    monkeypatch.setattr(importlib.import_module('ftl.train'), 'train', lambda *a, **k: pytest.fail('the analysis retrained'))
    with pytest.raises(UserError, match=rf"No exported learner of {rec.key}.*--suite architectures --preset tiny"): SUITES['analysis'].study(study)
    assert not (tmp_path/'results'/'analysis'/'errors.csv').exists()

def test_gradcam_of_a_vit_maps_its_patch_tokens_back_onto_the_image():
    "The headline model may be the ViT: its maps come from the token grid (class token dropped), at the input's size"
    from ftl.data import load_source, make_dls
    from ftl.models import create_learner
    learn = create_learner(make_dls(load_source('synthetic', 28), 1.0, 0, bs=4), 'vit_small_dinov2', pretrained=False, size=28)
    x = torch.rand(3, 3, 28, 28)
    maps = class_activation_maps(learn.model.eval(), x, [0, 1, 0])
    assert maps.shape == (3, 28, 28) and np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1

PREDICT = '''
import sys, numpy as np, torch
from fastai.vision.all import load_learner
from ftl.analysis import interpret
from ftl.data import load_source, labelled_test_dl
learn = load_learner(sys.argv[1], cpu=True)
reduced = learn.get_preds(dl=labelled_test_dl(learn.dls, load_source('synthetic', 32)))[0]  # as trained: bf16 autocast
full = interpret(sys.argv[1], 'synthetic', 32).preds  # the analysis: fp32
np.save(sys.argv[2], np.stack([reduced.float().numpy(), full.numpy()]))
'''

def test_the_analysis_predicts_in_fp32_the_same_whichever_bf16_kernels_the_cpu_has(tmp_path):
    "A bf16-trained model analysed with every CPU instruction allowed, then AVX2 only (no AVX-512 BF16, no AMX): bf16 predictions move (1e-3 here), the fp32 ones agree to float rounding"
    import os, subprocess, sys
    from ftl.train import Config, train, export
    learn, rec = train(Config(dataset='synthetic', size=32, arch='mobilenetv2', strategy='full-finetune', epochs=1, bs=16, precision='bf16'))
    assert rec.hyperparams['precision'] == 'bf16'
    model = export(learn, tmp_path/'m.pkl')
    out = {}
    for isa in ('ALL', 'AVX2'):  # AVX2: no AVX-512 BF16, no AMX (oneDNN's bf16 emulated, its fp32 summed otherwise)
        env = {**os.environ, 'ONEDNN_MAX_CPU_ISA': isa}
        p = subprocess.run([sys.executable, '-c', PREDICT, str(model), str(tmp_path/f'{isa}.npy')], env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-3000:]
        out[isa] = np.load(tmp_path/f'{isa}.npy')
    (bf16_a, fp32_a), (bf16_b, fp32_b) = out['ALL'], out['AVX2']
    assert np.abs(fp32_a - fp32_b).max() < 1e-5  # fp32: the same numbers with or without the CPU's bf16 instructions
    assert np.abs(bf16_a - fp32_a).max() > 1e-4 and np.abs(bf16_b - fp32_b).max() > 1e-4  # bf16 autocast was really on in the other arm
    print('bf16 across ISAs: max difference', np.abs(bf16_a - bf16_b).max(), '; fp32:', np.abs(fp32_a - fp32_b).max())

def test_a_persons_commentary_holds_no_number_a_rerun_could_move():
    "Numbers come from the tables; written words refer to them (a rerun on another CPU never contradicts the prose)"
    from pathlib import Path
    notes = pd.read_csv(Path(__file__).resolve().parents[1]/'results'/'analysis'/'commentary.csv', keep_default_na=False)
    assert len(notes) and not [t for t in notes.commentary if any(ch.isdigit() for ch in t)]
