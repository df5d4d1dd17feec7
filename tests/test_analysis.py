import json, shutil
from dataclasses import replace
import numpy as np, pandas as pd, pytest
from scipy import ndimage
from ftl.analysis import image_quality, error_evidence, categorize, CATEGORIES

rng = np.random.default_rng(0)

def clustered(n_per, centres, noise=0.05):
    x = np.concatenate([c + noise*rng.standard_normal((n_per, len(c))) for c in centres])
    return x/np.linalg.norm(x, axis=1, keepdims=True), np.repeat(np.arange(len(centres)), n_per)

def evidence_for(test_imgs, probs, y_true, test_emb, confused=()):
    centres = np.eye(3)
    train_emb, train_y = clustered(20, centres)
    train_imgs = rng.integers(0, 255, (60, 32, 32)).astype(np.uint8)
    return error_evidence(np.array(probs), np.array(y_true), test_emb, train_emb, train_y,
                          image_quality(test_imgs), image_quality(train_imgs), list(confused), k=5)

def test_blurred_copy_is_flagged_as_poor_quality():
    sharp = rng.integers(0, 255, (32, 32)).astype(np.uint8)
    blurred = ndimage.gaussian_filter(sharp.astype(float), 2).astype(np.uint8)
    q = image_quality([sharp, blurred])
    assert q.sharpness[1] < q.sharpness[0]/10
    emb, _ = clustered(1, [np.eye(3)[0]])
    ev = evidence_for([blurred], [[0.3, 0.45, 0.25]], [0], emb)
    assert ev.sharpness_z[0] < -2.5 and categorize(ev.iloc[0]) == 'poor image quality'
    ev_sharp = evidence_for([sharp], [[0.3, 0.45, 0.25]], [0], emb)
    assert categorize(ev_sharp.iloc[0]) != 'poor image quality'

def test_swapped_label_with_confident_neighbours_is_a_possible_labelling_error():
    img = rng.integers(0, 255, (1, 32, 32)).astype(np.uint8)
    emb, _ = clustered(1, [np.eye(3)[1]])  # looks like class 1 ...
    ev = evidence_for(img, [[0.05, 0.92, 0.03]], [0], emb)  # ... labelled 0, predicted 1 with confidence
    assert ev.neighbour_agree[0] == 1.0 and categorize(ev.iloc[0]) == 'possible labelling error'

def test_confusable_pair_and_ambiguous_fallback():
    img = rng.integers(0, 255, (1, 32, 32)).astype(np.uint8)
    between = (np.eye(3)[0]*0.45 + np.eye(3)[2]*0.55)[None]
    ev = evidence_for(img, [[0.35, 0.05, 0.6]], [0], between/np.linalg.norm(between), confused=[(0, 2)])
    assert ev.pair_rank[0] == 0 and ev.sim_pred[0] > ev.sim_true[0]
    assert categorize(ev.iloc[0]) == 'confusable classes'
    ev = evidence_for(img, [[0.35, 0.05, 0.6]], [0], between/np.linalg.norm(between), confused=[(1, 2)])
    assert categorize(ev.iloc[0]) == 'ambiguous / domain difficulty'

def test_analysis_suite_reloads_the_exported_learner_and_categorises(tmp_path):
    from fastai.vision.all import ClassificationInterpretation
    from ftl.suites import SUITES, Study
    from ftl.records import read_records
    study = Study(dataset='synthetic', arch='mobilenetv2', results=str(tmp_path/'results'),
                  fixed=dict(size=32, epochs=1, bs=16, strategy='full-finetune', seed=0))
    SUITES['architectures'].configs  # the analysis picks the best of architectures and strategies by validation
    from ftl.suites import run_suite
    run_suite(SUITES['architectures'], study)
    rec = read_records(tmp_path/'results'/'architectures')[0]
    assert (study.layout.models/f'{rec.key}.pkl').exists()  # the suite kept its learner
    SUITES['analysis'].study(study)
    out = tmp_path/'results'/'analysis'
    assert (out/'model.pkl').exists() and json.loads((out/'model.json').read_text())['key'] == rec.key  # shipped beside the analysis
    errors = pd.read_csv(out/'errors.csv', keep_default_na=False)
    assert 0 < len(errors) <= 16 and set(errors.category) <= set(CATEGORIES) and (errors.true != errors.pred).all()
    assert {'image_id', 'confidence', 'margin', 'neighbour_agree', 'sharpness_z', 'commentary'} <= set(errors.columns)
    for f in ('confusion_best', 'error_gallery', 'top_losses'): assert (study.layout.figures/f'{f}.png').exists()
    # a clean clone has no models/: the shipped model is used, and the analysis reproduces
    shutil.rmtree(study.layout.models)
    before = (out/'errors.csv').read_text()
    SUITES['analysis'].study(study)
    assert (out/'errors.csv').read_text() == before

def test_analysis_retrains_deterministically_or_refuses_to_overwrite(tmp_path, capsys):
    from ftl.suites import SUITES, Study, run_suite
    from ftl.records import read_records, save_record
    from ftl.errors import UserError
    study = Study(dataset='synthetic', arch='mobilenetv2', results=str(tmp_path/'results'),
                  fixed=dict(size=32, epochs=1, bs=16, strategy='full-finetune', seed=0))
    run_suite(SUITES['architectures'], study)
    shutil.rmtree(study.layout.models)  # nothing exported, nothing shipped: the analysis retrains the seeded config
    SUITES['analysis'].study(study)
    assert (tmp_path/'results'/'analysis'/'errors.csv').exists()
    (tmp_path/'results'/'analysis'/'model.json').unlink(); shutil.rmtree(study.layout.models)
    rec = read_records(tmp_path/'results'/'architectures')[0]
    save_record(replace(rec, test={**rec.test, 'accuracy': rec.test['accuracy'] + 0.01}), rec.path)  # as if from another machine
    committed = (tmp_path/'results'/'analysis'/'errors.csv').read_text()
    SUITES['analysis'].study(study)  # refuses to analyse another model, keeps what is committed, and --suite all goes on
    assert 'the committed analysis is kept' in capsys.readouterr().out
    assert (tmp_path/'results'/'analysis'/'errors.csv').read_text() == committed
    (tmp_path/'results'/'analysis'/'errors.csv').unlink()
    with pytest.raises(UserError, match='not the recorded one'): SUITES['analysis'].study(study)
