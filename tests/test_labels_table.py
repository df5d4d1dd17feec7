"Datasets in the shape a labels table gives them: a CSV (or Parquet) of file, label and split, Hugging Face's metadata.csv"
import json, re, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest
from PIL import Image
from ftl.data import load_source, dataset_id, stratified_split, SPLIT_SEED
from ftl.datasets import card_of
from ftl.errors import DataError, DatasetMissing
from ftl.train import Config

ROOT = Path(__file__).resolve().parents[1]
CARD = "---\npretty_name: Dots\ndescription: Gray dots and stripes, made by a test.\n---\nProse.\n"

def images(root: Path, n=12, classes=('dot', 'stripe', 'plain'), sub='img') -> pd.DataFrame:
    "PNGs of `n` images per class under root/sub (a learnable pattern per class); their table rows: file_name, label"
    rng, rows = np.random.default_rng(0), []
    (root/sub).mkdir(parents=True, exist_ok=True)
    for c in classes:
        for i in range(n):
            a = rng.integers(0, 60, (24, 24), dtype=np.uint8)
            if c == 'dot': a[9:15, 9:15] = 230
            elif c == 'stripe': a[:, 10:14] = 230
            Image.fromarray(a).save(root/sub/f'{c}{i}.png'); rows.append(dict(file_name=f'{sub}/{c}{i}.png', label=c))
    return pd.DataFrame(rows)

def with_splits(df: pd.DataFrame) -> pd.DataFrame:
    "Every class in train (half), valid and test (a quarter each)"
    k = df.groupby('label').cumcount() % 4
    return df.assign(split=np.select([k < 2, k == 2], ['train', 'valid'], 'test'))

def test_a_table_with_a_split_column_and_a_card_beside_it(tmp_path):
    df = with_splits(images(tmp_path)); df.to_csv(tmp_path/'labels.csv', index=False)
    (tmp_path/'README.md').write_text(CARD)
    src = load_source(f'csv:{tmp_path}/labels.csv', 16)
    assert list(src.classes) == ['dot', 'plain', 'stripe'] and len(src.labels) == len(df)
    ids = list(src.info['ids'])
    assert [src.split[ids.index(f)] for f in df.file_name] == list(df.split)  # the table's splits, row by row
    assert [src.classes[src.labels[ids.index(f)]] for f in df.file_name] == list(df.label)
    assert card_of(src).pretty_name == 'Dots'
    df.to_parquet(tmp_path/'labels.parquet')
    assert (load_source(f'csv:{tmp_path}/labels.parquet', 16).split == src.split).all()

def test_hugging_face_metadata_csv_and_fastai_column_names(tmp_path):
    images(tmp_path).to_csv(tmp_path/'metadata.csv', index=False)  # imagefolder: file_name and a label, no split
    src = load_source(f'csv:{tmp_path}/metadata.csv', 16)
    assert (src.split == stratified_split(src.labels, (0.8, 0.1, 0.1), SPLIT_SEED, src.classes)).all()  # the stratified 80/10/10 split
    assert all(set(src.labels[src.split == s]) == {0, 1, 2} for s in ('train', 'valid', 'test'))
    other = with_splits(images(tmp_path)).rename(columns=dict(file_name='fname', label='kind', split='part')).assign(notes='x')
    other.to_csv(tmp_path/'other.csv', index=False)
    named = load_source(f'csv:{tmp_path}/other.csv?fn_col=fname&label_col=kind&valid_col=part', 16)
    assert list(named.classes) == ['dot', 'plain', 'stripe'] and (named.split == 'test').sum() == 9
    key = Config(dataset=f'csv:{tmp_path}/other.csv?fn_col=fname&label_col=kind&valid_col=part', size=16).key()
    assert '?' not in key and '&' not in key and '=' not in key

def test_a_changed_label_or_image_is_a_new_dataset(tmp_path):
    df = images(tmp_path); df.to_csv(tmp_path/'t.csv', index=False)
    name = f'csv:{tmp_path}/t.csv'
    before = dataset_id(name)
    df.assign(label=df.label.where(df.index != 0, 'stripe')).to_csv(tmp_path/'t.csv', index=False)
    relabelled = dataset_id(name)
    Image.fromarray(np.zeros((24, 24), np.uint8)).save(tmp_path/df.file_name[1])
    assert len({before, relabelled, dataset_id(name)}) == 3

BAD = {  # what is wrong -> (how the table is made, the one line that says so)
    'missing files': (lambda df: df.assign(file_name=[f'img/gone{i}.png' if i < 4 else f for i, f in enumerate(df.file_name)]),
                      r'names 4 files that do not exist under .*: img/gone0\.png, img/gone1\.png, img/gone2\.png \.\.\.'),
    'one class': (lambda df: df.assign(label='dot'), r"column 'label' holds one class \('dot'\); a classifier needs at least two"),
    'bad split': (lambda df: with_splits(df).assign(split=lambda d: d.split.where(d.index != 5, 'training')),
                  r"column 'split' holds \['training'\]; allowed: train, valid \(or val\), test"),
    'duplicate': (lambda df: df.assign(file_name=df.file_name.where(df.index != 2, df.file_name[0])), r"names file 'img/dot0\.png' in 2 rows"),
    'outside': (lambda df: df.assign(file_name=df.file_name.where(df.index != 0, '../elsewhere.png')),
                r"names 1 files outside its folder .* \(first: '\.\./elsewhere\.png'\): paths must be relative to the table's folder"),
    'no label column': (lambda df: df.rename(columns=dict(label='what')), r"has no label column among .*: name it with csv:.*\?label_col=<column>"),
}

@pytest.mark.parametrize('what', BAD)
def test_each_bad_table_is_refused_with_one_line_naming_it(tmp_path, what):
    make, msg = BAD[what]
    make(images(tmp_path)).to_csv(tmp_path/'t.csv', index=False)
    with pytest.raises((DataError, DatasetMissing), match=msg): load_source(f'csv:{tmp_path}/t.csv', 16)

def test_the_command_line_refuses_each_bad_table_with_exit_1_and_writes_no_record(tmp_path):
    calls = []
    for what, (make, _) in BAD.items():
        d = tmp_path/what.replace(' ', '-'); make(images(d)).to_csv(d/'t.csv', index=False)
        calls.append(['--suite', 'smoke', '--preset', 'tiny', '--dataset', f'csv:{d}/t.csv', '--results', str(d/'results')])
    calls.append(['--suite', 'smoke', '--preset', 'tiny', '--dataset', f'csv:{tmp_path}/none.csv', '--results', str(tmp_path/'r')])
    p = subprocess.run([sys.executable, str(ROOT/'tests'/'cli_driver.py'), json.dumps(calls)], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    runs = json.loads(p.stdout.splitlines()[-1])
    for (what, (_, msg)), r in zip([*BAD.items(), ('absent', (None, r'Labels table .*none\.csv does not exist'))], runs, strict=True):
        lines = r['stderr'].strip().splitlines()
        assert r['returncode'] == 1 and len(lines) == 1 and lines[0].startswith('error: '), (what, r['stderr'][-2000:])
        assert re.search(msg, lines[0]), (what, lines[0])
    assert not list(tmp_path.rglob('*.json'))
