import json, math, os, pytest, torch
import numpy as np
from dataclasses import replace
from PIL import Image
from ftl.train import Config, train, run, export, build_learner, preset_config
from ftl.records import Record, SCHEMA_VERSION
from ftl.errors import ConfigError

def test_a_run_writes_a_complete_valid_record(tiny):
    cfg, learn, r = tiny
    d = json.loads(json.dumps(r.to_dict()))  # JSON-ready
    assert Record.from_dict(d) == r and d['version'] == SCHEMA_VERSION
    assert r.config == {**r.config, 'dataset': 'synthetic', 'arch': 'efficientnet_lite0', 'pretrained': True}
    assert [e['epoch'] for e in r.history] == [1, 2] and {'train_loss', 'valid_loss', 'accuracy', 'macro_f1', 'lr'} <= set(r.history[0])
    assert r.best['valid_loss'] == min(e['valid_loss'] for e in r.history)  # restored on validation loss
    t = r.test
    assert t['classes'] == r.vocab == ['class0', 'class1', 'class2']
    from sklearn.metrics import confusion_matrix, f1_score
    from ftl.data import load_source, labelled_test_dl
    preds, targs = learn.get_preds(dl=labelled_test_dl(learn.dls, load_source('synthetic', 32)))  # the restored model, test split
    assert t['confusion'] == confusion_matrix(targs, preds.argmax(1), labels=[0, 1, 2]).tolist()
    assert t['macro_f1'] == pytest.approx(f1_score(targs, preds.argmax(1), labels=[0, 1, 2], average='macro', zero_division=0))
    assert sum(map(sum, t['confusion'])) == r.n_test == sum(c['support'] for c in t['per_class'].values())
    assert abs(t['accuracy'] - sum(t['confusion'][i][i] for i in range(3))/r.n_test) < 1e-9
    assert r.n_train == 72 and r.normalization == {'mean': [0.5]*3, 'std': [0.5]*3}
    assert r.hyperparams['precision'] == 'fp32' and r.env['torch'] and r.train_seconds > 0
    assert r.hyperparams['precision'] == 'fp32' and r.env['torch'] and r.train_seconds > 0
    from ftl.train import cpu_bf16_flags
    assert r.env['cpu_bf16'] == cpu_bf16_flags() != ''  # what decides a bf16 run's speed on this CPU
def test_a_broken_record_does_not_validate(tiny):
    d = tiny[2].to_dict()
    with pytest.raises(ValueError, match='best_epoch'): Record.from_dict({**d, 'best_epoch': 0})
    with pytest.raises(ValueError, match='schema version'): Record.from_dict({**d, 'version': 1})
    with pytest.raises(ValueError, match='unknown record fields'): Record.from_dict({**d, 'extra': 1})

@pytest.fixture(scope='module')
def cold_warm(tmp_path_factory):
    "One unaugmented config with TTA, run on a cold cache (weight conversion and decoding inside the run) and again on the warm one"
    cfg = Config(dataset='synthetic', size=32, arch='mobilenetv2', epochs=1, bs=16, strategy='full-finetune', tta=True)
    with pytest.MonkeyPatch.context() as m:
        m.setenv('FTL_CACHE', str(tmp_path_factory.mktemp('cold')))
        return run(cfg), run(cfg)

def test_same_config_same_numbers_cold_or_warm_cache(cold_warm):
    cold, warm = cold_warm
    assert cold.history == warm.history and cold.test == warm.test and cold.test_tta == warm.test_tta

BAD = [('monitor', 'foo', 'one of'), ('lr', -1, 'positive'), ('lr', float('nan'), 'positive'), ('freeze_epochs', -1, '>= 0'),
       ('epochs', 0, '>= 1'), ('size', 4, '>= 16'), ('fraction', 0, r'\(0, 1\]'), ('augment', 'yes', 'one of'),
       ('strategy', 'magic', 'one of'), ('bs', 0, '>= 1'), ('patience', 0, '>= 1'), ('head', 'deep', 'linear'),
       ('seed', -3, '>= 0'), ('class_weights', 'yes', 'True or False'), ('dataset', 'imagenette', 'Unknown dataset')]

@pytest.mark.parametrize('field,value,allowed', BAD)
def test_every_bad_setting_names_its_field_before_training(field, value, allowed):
    with pytest.raises(ConfigError, match=allowed) as e: Config(**{field: value}).validate()
    assert field in str(e.value) or field == 'dataset'
    assert 'Config(' not in str(e.value)  # the field, not the whole config

def test_settings_that_conflict_with_the_strategy():
    with pytest.raises(ConfigError, match=r'epochs is 1.*pass --epochs 2 or more'): Config(epochs=1).validate()
    with pytest.raises(ConfigError, match=r'epochs.*>= 4 for gradual-unfreeze'): Config(strategy='gradual-unfreeze', epochs=3).validate()
    with pytest.raises(ConfigError, match=r'size.*multiple of 14'): Config(arch='vit_small_dinov2', size=84 + 1).validate()
    with pytest.raises(ConfigError, match=r"Unknown preset 'huge'.*quick"): preset_config('huge')

def test_config_keys_are_stable_and_distinct():
    cfg = Config(dataset='synthetic', size=32)
    assert cfg.key() == Config(**cfg.__dict__).key() and cfg.key() != replace(cfg, lr=1e-3).key()
    assert Config().key().endswith(Config(class_weights=False).key()[-8:])  # defaults do not enter the hash

def test_exported_learner_predicts_on_paths_pil_images_and_odd_arrays(tiny, tmp_path):
    from fastai.learner import load_learner
    cfg, learn, rec = tiny
    learn = load_learner(export(learn, tmp_path/'m.pkl'))
    img = np.zeros((50, 70), np.uint8); img[:, 30:40] = 220  # class1's vertical bar, at another size
    Image.fromarray(img).save(tmp_path/'cell.png')
    preds = [learn.predict(x)[2] for x in (str(tmp_path/'cell.png'), Image.fromarray(img), img, np.stack([img]*3, -1))]
    assert all(p.shape == (3,) and torch.allclose(p, preds[0], atol=1e-5) for p in preds)

def test_class_weights_change_the_loss_toward_rare_classes():
    from ftl.data import load_source
    src = load_source('synthetic', 32)
    keep = np.flatnonzero((src.labels != 2) | (np.arange(len(src.labels)) % 4 == 0))  # class2 rare
    src.images, src.labels, src.split = src.images[keep], src.labels[keep], src.split[keep]
    cfg = Config(dataset='synthetic', size=32, arch='mobilenetv2', class_weights=True)
    learn, _ = build_learner(cfg, src)
    w = learn.loss_func.func.weight
    counts = np.bincount(src.labels[src.idx('train')])
    assert w.argmax() == counts.argmin() and np.allclose((w*torch.tensor(counts)).numpy(), len(src.idx('train'))/3)
    logits, y = torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2])
    plain = build_learner(replace(cfg, class_weights=False), src)[0].loss_func
    assert not torch.isclose(learn.loss_func(logits, y), plain(logits, y))

def test_tta_keeps_the_test_order_and_monitor_last_restores_the_final_epoch(monkeypatch):
    from fastai.learner import Learner
    from ftl.evaluate import test_metrics
    from ftl.data import load_source, labelled_test_dl
    cfg = Config(dataset='synthetic', size=32, arch='mobilenetv2', epochs=2, bs=16, strategy='full-finetune', augment='dihedral',
                 tta=True, monitor='last', lr=1e-2)  # lr: a model that tells classes apart, so misaligned predictions would show
    seen, tta = [], Learner.tta
    monkeypatch.setattr(Learner, 'tta', lambda self, *a, **kw: seen.append(tta(self, *a, **kw)) or seen[-1])  # fastai's TTA, watched
    learn, rec = train(cfg)
    assert rec.best_epoch == 2 and rec.hyperparams['early_stopping'] is None
    assert [c['support'] for c in rec.test_tta['per_class'].values()] == [c['support'] for c in rec.test['per_class'].values()]
    (tpreds, ttargs), = seen
    src = load_source('synthetic', 32)
    assert ttargs.tolist() == src.labels[src.idx('test')].tolist()  # the test split, in its order
    assert rec.test_tta == test_metrics(ttargs, tpreds.argmax(1), rec.vocab)  # the metrics of TTA's own predictions
    plain = learn.get_preds(dl=labelled_test_dl(learn.dls, src))[0]
    assert rec.test == test_metrics(ttargs, plain.argmax(1), rec.vocab) and not torch.allclose(tpreds, plain, atol=1e-4)  # views differ

def test_tta_of_an_unaugmented_model_uses_the_dihedral_arm(cold_warm):
    rec = cold_warm[1]
    assert rec.hyperparams['tta']['name'] == 'dihedral' and rec.test_tta['classes'] == rec.test['classes']

def test_bf16_runs_the_network_in_bfloat16_on_cpu_and_says_so():
    cfg = Config(dataset='synthetic', size=32, arch='mobilenetv2', epochs=4, bs=8, strategy='full-finetune', precision='bf16',
                 lr=5e-3)  # four epochs of nine steps learn the bars' orientation with one thread or two, AMX or AVX-512 kernels (two: AMX only)
    learn, r = train(cfg, device=torch.device('cpu'))
    seen = []
    hook = learn.model[-1][-1].register_forward_hook(lambda m, i, o: seen.append(o.dtype))  # the head's last linear layer
    from sklearn.metrics import confusion_matrix
    from ftl.data import load_source, labelled_test_dl
    preds, targs = learn.get_preds(dl=labelled_test_dl(learn.dls, load_source('synthetic', 32)))
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16} and r.hyperparams['precision'] == 'bf16'
    assert all(p.dtype == torch.float32 for p in learn.model.parameters())  # master weights stay fp32
    assert r.test['confusion'] == confusion_matrix(targs, preds.argmax(1), labels=[0, 1, 2]).tolist()  # the bf16 model's test predictions
    assert r.test['accuracy'] > 0.8  # learnt in bf16 (the pretrained body under its untrained head scores 0.58 here, chance 1/3)
    assert all(math.isfinite(e['train_loss']) for e in r.history)
    again = run(cfg, device=torch.device('cpu'))
    assert again.history == r.history and again.test == r.test  # reproducible in bf16 too

def test_the_study_preset_trains_vits_in_bf16_and_cnns_in_the_default():
    assert preset_config('study', arch='vit_small_dinov2', size=126).precision == 'bf16'
    assert preset_config('study', arch='mobilenetv2').precision == preset_config('quick', arch='vit_small_dinov2', size=84).precision == 'auto'
    assert preset_config('study', arch='vit_small_dinov2', size=126, precision='fp32').precision == 'fp32'  # the user's choice wins
    assert preset_config('study', arch='vit_small_dinov2', size=126, strategy='feature-extraction').precision == 'auto'  # cached fp32 features
    with pytest.raises(ConfigError, match='precision'): Config(precision='fp8').validate()

class Killed(BaseException): "A stand-in for the process being stopped (not an Exception: nothing in fastai catches it)"

def _killer(at: int, where: str):
    "A callback that stops the run after its `at`-th epoch ('epoch'), or at the start of the fit that follows it ('fit')"
    from fastai.callback.core import Callback
    class Kill(Callback):
        order, n = 100, 0
        def after_epoch(self):
            self.n += 1
            if where == 'epoch' and self.n == at: raise Killed()
        def before_fit(self):
            if where == 'fit' and self.n == at: raise Killed()
    return Kill()

@pytest.mark.parametrize('strategy,patience,at,where', [('fine-tune', 1, 2, 'epoch'),          # mid-stage, then early stopping
                                                        ('gradual-unfreeze', 4, 2, 'fit')])    # between two stages
def test_a_run_stopped_part_way_resumes_from_its_checkpoint_to_the_same_record(monkeypatch, strategy, patience, at, where):
    import ftl.files, sys
    T = sys.modules['ftl.train']
    monkeypatch.setattr('ftl.callbacks.CHECKPOINT_SECONDS', 0)  # a state after every epoch and fit, however short
    cfg = Config(dataset='synthetic', size=32, arch='efficientnet_lite0', epochs=4, bs=16, strategy=strategy, patience=patience, augment='flips')
    _, whole = train(cfg)
    folder = ftl.files.cache_dir('checkpoints', cfg.key())
    assert not (folder/'state.pt').exists()  # a finished run leaves no checkpoint
    callbacks = T._callbacks
    monkeypatch.setattr(T, '_callbacks', lambda c, h: callbacks(c, h) + [_killer(at, where)])
    with pytest.raises(Killed): train(cfg)
    assert (folder/'state.pt').exists()
    monkeypatch.setattr(T, '_callbacks', callbacks)
    _, resumed = train(cfg)
    assert resumed.notes == [f'resumed after epoch {at} from a checkpoint'] and not (folder/'state.pt').exists()
    assert resumed.history == whole.history and resumed.best_epoch == whole.best_epoch  # train loss, validation, lr: every epoch
    assert resumed.hyperparams['stages'] == whole.hyperparams['stages'] and resumed.predictions == whole.predictions
    h = whole.history  # the epoch that ended the run early is in the history: `patience` epochs after the best one
    assert len(h) == cfg.epochs or len(h) - whole.best_epoch == cfg.patience

def test_a_run_of_seconds_saves_no_state_and_a_stopped_one_starts_again(monkeypatch):
    "Saving a whole state (a ViT-S's is 259 MB) after each epoch of a run of seconds would cost more than it saves"
    import ftl.files, sys
    T = sys.modules['ftl.train']
    monkeypatch.setattr('ftl.callbacks.CHECKPOINT_SECONDS', 3600)
    cfg = Config(dataset='synthetic', size=32, arch='efficientnet_lite0', epochs=3, bs=16, strategy='full-finetune', seed=5)
    callbacks = T._callbacks
    monkeypatch.setattr(T, '_callbacks', lambda c, h: callbacks(c, h) + [_killer(2, 'epoch')])
    with pytest.raises(Killed): train(cfg)
    assert not (ftl.files.cache_dir('checkpoints', cfg.key())/'state.pt').exists()
    monkeypatch.setattr(T, '_callbacks', callbacks)
    assert train(cfg)[1].notes == []  # trained afresh, not resumed
