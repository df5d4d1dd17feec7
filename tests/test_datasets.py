import numpy as np, pytest
from PIL import Image
from ftl.data import load_source, check_dataset_name, dataset_id, dataset_help, register_dataset, DATASETS, Source
from ftl.datasets import tasks_of, card_of, load_card
from ftl.cards import parse_card, CARDS_DIR
from ftl.errors import DataError

FOLDER_CARD = """---
pretty_name: Cracks
description: Test tiles.
classes: {clean: no crack, hairline: a thin crack, wide: a wide crack}
tasks:
  - name: cracked
    description: any crack
    rule: {ok: [clean], cracked: [hairline, wide]}
    reason: what an inspector acts on
---
Prose.
"""

def make_folder(root, classes=('clean', 'hairline', 'wide'), n=10, card=FOLDER_CARD):
    rng = np.random.default_rng(0)
    for c in classes:
        (root/c).mkdir(parents=True, exist_ok=True)
        for i in range(n): Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(root/c/f'{i}.png')
    if card: (root/'README.md').write_text(card)
    return root

def test_elpv_tasks_regroup_the_levels_and_come_from_its_card():
    four, defective, binary = (load_source(n, 32) for n in ('elpv', 'elpv-defective', 'elpv-binary'))
    assert defective.counts() == {'functional': 1508 + 295, 'defective': 106 + 715}  # defect probability >= 0.5
    assert binary.counts() == {'functional': 1508, 'defective': 295 + 106 + 715}    # the retired grouping, unchanged
    assert defective.images is four.images or defective.images.filename == four.images.filename  # one store for all tasks
    assert tasks_of('elpv') == ['elpv-defective'] and tasks_of('elpv', retired=True) == ['elpv-defective', 'elpv-binary']
    card = card_of(four)
    assert list(card.classes) == four.classes and card.license == four.info['license'] and not card.measured_only
    assert card.task('binary').retired and {'buerhop2018', 'deitsch2019'} <= {c['key'] for c in card.citation}
    assert {p['key'] for p in card.published} <= {c['key'] for c in card.citation}  # every published figure cites a reference of the card
    assert card_of('elpv-defective').pretty_name == card.pretty_name
    assert 'module' in card.split_note and card_of(load_source('synthetic', 32)).split_note == ''  # what the split cannot keep apart

def test_a_folder_card_defines_tasks_named_with_a_hash(tmp_path):
    root = make_folder(tmp_path/'d')
    base, task = load_source(f'folder:{root}', 16), load_source(f'folder:{root}#cracked', 16)
    assert task.name == f'folder:{root}#cracked' and task.classes == ['ok', 'cracked'] and task.counts() == {'ok': 10, 'cracked': 20}
    assert set(task.split) == {'train', 'valid', 'test'} and tasks_of(f'folder:{root}') == [f'folder:{root}#cracked']
    ident, task_ident = dataset_id(f'folder:{root}'), dataset_id(f'folder:{root}#cracked')
    assert task_ident.startswith(ident) and task_ident != ident  # the rule is part of the task's identity
    assert card_of(base).classes['wide'] == 'a wide crack'
    with pytest.raises(DataError, match=r"defines no task 'nosuch'.*\['cracked'\]"): check_dataset_name(f'folder:{root}#nosuch')

def test_without_a_card_only_what_was_measured(tmp_path):
    root = make_folder(tmp_path/'d', card=None)
    card = card_of(load_source(f'folder:{root}', 16))
    assert card.measured_only and card.measured['counts'] == {'clean': 10, 'hairline': 10, 'wide': 10}
    assert card.measured['sizes'] == {'12x12': 30} and card.measured['modes'] == {'L': 30} and card.classes['clean'] == ''
    assert not card.license and not card.published and tasks_of(f'folder:{root}') == []
    assert load_card(f'folder:{root}', card_path=CARDS_DIR/'elpv.md').pretty_name.startswith('ELPV')
    (root/'README.md').write_text('# Tiles\nPhotographed in 2020.\n')  # prose alone is not a card
    assert card_of(f'folder:{root}').measured_only

@pytest.mark.parametrize('front, error', [
    ('pretty_name: x\n', r"field 'description' must be a non-empty string"),
    ('pretty_name: x\ndescription: y\nlicence: MIT\n', r"field 'licence' must be one of .*unknown field"),
    ('pretty_name: x\ndescription: y\ncitation: [{key: a, title: t}]\n', r"field 'citation\[0\]'.*missing \['authors', 'venue', 'year'\]"),
    ('pretty_name: x\ndescription: y\nclasses: {a: A, b: B}\ntasks: [{name: t, description: d, rule: {x: [a]}}]\n',
     r"field 'tasks\[0\].rule' must be a grouping that uses every class"),
    ('pretty_name: x\ndescription: y\nsplit: {stratified: [0.5, 0.5], seed: 1}\n', r"field 'split' must be"),
    ('pretty_name: x\ndescription: y\npublished: [{key: z, task: t, metric: m, value: 1, split: s, model: m}]\n',
     r"field 'published\[0\].key' must be one of the citation keys"),
])
def test_card_fields_are_checked_with_errors_naming_field_and_file(tmp_path, front, error):
    (tmp_path/'card.md').write_text(f'---\n{front}---\n')
    with pytest.raises(DataError, match=error) as e: parse_card(tmp_path/'card.md')
    assert str(tmp_path/'card.md') in str(e.value)

def test_card_classes_must_match_the_folder(tmp_path):
    root = make_folder(tmp_path/'d', classes=('clean', 'wide'), card=FOLDER_CARD)
    with pytest.raises(DataError, match=r"README.md: field 'classes' must list the dataset's classes"): card_of(load_source(f'folder:{root}', 16))

def test_a_new_source_is_one_registration_and_every_name_derives_from_it():
    @register_dataset('tiny', 'four dots')
    def tiny(size, skip_bad=False):
        labels = np.array([0, 0, 0, 1, 1, 1])
        return Source('tiny', np.zeros((6, size, size), np.uint8), labels, ['x', 'y'], np.array(['train', 'valid', 'test']*2))
    try:
        assert check_dataset_name('tiny') == 'tiny' and "'tiny' (four dots)" in dataset_help()
        assert load_source('tiny', 8).images.shape == (6, 8, 8) and dataset_id('tiny') == '' and tasks_of('tiny') == []
        with pytest.raises(ValueError, match='already registered'): register_dataset('tiny', 'again')(tiny)
    finally: DATASETS.pop('tiny')
    with pytest.raises(DataError, match=r"Unknown dataset 'tiny'.*'elpv'.*'folder:<path>'"): check_dataset_name('tiny')
    with pytest.raises(DataError, match='Unknown dataset'): check_dataset_name('folder:')

def test_a_folder_is_identified_once_per_command_and_afresh_after(tmp_path, monkeypatch):
    import ftl.datasets as fd
    from ftl.data import resolved
    from ftl.config import Config
    root, hashed = make_folder(tmp_path/'d', card=None), []
    monkeypatch.setattr(fd, '_fingerprint', lambda path, rel, f=fd._fingerprint: hashed.append(path) or f(path, rel))
    cfgs = [Config(dataset=f'folder:{root}', size=16, seed=s) for s in range(5)]
    with resolved():
        keys = [c.key() for c in cfgs] + [c.key() for c in cfgs]
        dataset, arch = cfgs[0].resolve()
        assert dataset.ident and arch.name == cfgs[0].arch and cfgs[0].key(dataset) == keys[0]
    assert len(hashed) == 1 and len(set(keys)) == 5  # ten keys, one hash of the files
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(root/'wide'/'0.png')  # one image changed between two commands
    assert cfgs[0].key() != keys[0] and len(hashed) == 2  # outside a command's block: hashed afresh, a new key
