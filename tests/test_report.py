import re, shutil, pytest
from pathlib import Path
from ftl import report, prose as findings
from ftl.studies import SUITES, Study

ROOT = Path(__file__).resolve().parents[1]
CODE = [r'Sequential\(', r'in_features=', r'\[\d\.\d+e-', r'\b[a-z]+_[a-z_]+\b', r'def ', r'import ', r'lambda', r'\{\'']

@pytest.fixture(scope='module')
def built(tmp_path_factory):
    "The study report built from a copy of the committed results and figures"
    tmp = tmp_path_factory.mktemp('report')
    shutil.copytree(ROOT/'results', tmp/'results'); shutil.copytree(ROOT/'figures', tmp/'results'/'figures')
    SUITES['report'].study(Study(preset='study', results=str(tmp/'results')))
    return tmp/'results'/'report'/'report.pdf'

def test_report_has_at_most_ten_pages_and_no_code(built):
    from pypdf import PdfReader
    pages = PdfReader(str(built)).pages
    assert report.MAX_PAGES == 10 and len(pages) <= report.MAX_PAGES  # build_report's refusal of more: tested below
    text = '\n'.join(p.extract_text() for p in pages)
    allowed = {'likely_defective'}  # none expected; a snake_case token anywhere means a column name or code leaked
    for pat in CODE:
        hits = [m for m in re.findall(pat, text) if m not in allowed]
        assert not hits, (pat, hits[:5])
    for needed in ('Which backbone', 'Which way of fine-tuning', 'Class imbalance', 'How much labelled data', 'What a practitioner should do', 'Hyperparameters'):
        assert needed in text

def test_a_report_over_ten_pages_is_refused_not_truncated(tmp_path, monkeypatch):
    long = tmp_path/'long.typ'
    long.write_text('#for i in range(11) [Page #i #pagebreak(weak: true)]')
    monkeypatch.setattr(report, 'TEMPLATE', long)
    with pytest.raises(RuntimeError, match='11 pages, more than 10'): report.build_report({}, tmp_path, tmp_path/'out')

def test_a_claim_the_results_no_longer_support_fails_the_build_by_name():
    v = dict(raw=dict(resolution=[dict(size=84, valid_macro_f1=0.6), dict(size=224, valid_macro_f1=0.5)]))
    with pytest.raises(findings.ClaimFailed, match="'resolution-helps'"): findings.check_claims(v)
    v['raw']['resolution'][1]['valid_macro_f1'] = 0.7
    assert [c['name'] for c in findings.check_claims(v)] == ['resolution-helps']  # claims without their inputs are not checked

def test_every_figure_the_report_places_exists_and_was_written_by_a_suite(built):
    src = report.TEMPLATE.read_text()
    for name in re.findall(r'fig\("(\w+)"\)', src):
        assert (ROOT/'figures'/f'{name}.pdf').exists(), name
        assert re.search(rf"['/]{name}['\)]", ''.join(p.read_text() for p in (ROOT/'ftl').rglob('*.py'))), f'{name} is written by no module'

def test_no_value_in_the_source_swallows_the_punctuation_after_it():
    "typst ends an embedded expression (`#v.x;`, `#(v.x);`, `#if c [a] else [b];`) at a semicolon and drops it: write `\\;`"
    src = (Path(report.__file__).parents[1]/'report'/'report.typ').read_text()
    assert not re.findall(r'#(?:v(?:\.\w+)+|\([^)]*\));', src)
    assert not re.findall(r'\];', src)  # the end of an `#if` block's content, in markup

def test_a_column_with_one_value_in_every_row_moves_out_of_the_table_into_words():
    t = dict(headers=['strategy', 'batch', 'seeds'], rows=[['fine-tune', '32', '0,1,2'], ['full-finetune', '32', '0']])
    kept, same = findings.lift_constant(t)
    assert kept == dict(headers=['strategy', 'seeds'], rows=[['fine-tune', '0,1,2'], ['full-finetune', '0']]) and same == ['batch: 32']
    assert findings.lift_constant(dict(headers=['a'], rows=[['1']]))[0]['headers'] == ['a']  # one row: nothing is 'constant'

def test_a_study_with_suites_still_running_gets_a_report_without_them(tmp_path):
    "A report in mid-study: the sections of unfinished suites (and what refers to them) are left out, nothing breaks"
    shutil.copytree(ROOT/'results', tmp_path/'results'); shutil.copytree(ROOT/'figures', tmp_path/'results'/'figures')
    for suite in ('architectures', 'headline'): shutil.rmtree(tmp_path/'results'/suite)
    SUITES['report'].study(Study(preset='study', results=str(tmp_path/'results')))
    from pypdf import PdfReader
    text = '\n'.join(p.extract_text() for p in PdfReader(str(tmp_path/'results'/'report'/'report.pdf')).pages)
    assert 'Method' in text and 'What a practitioner should do' in text
    assert not {'Which backbone', 'Which way of fine-tuning', 'The headline models'} & set(text.splitlines())  # the grids and headline do
