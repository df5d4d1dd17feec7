import json, os, re, shutil, pytest
import pandas as pd
from pathlib import Path
from ftl import report, prose, tables
from ftl.errors import UserError
from ftl.records import read_records, records_frame
from ftl.studies import SUITES, Study

ROOT = Path(__file__).resolve().parents[1]
CODE = [r'Sequential\(', r'in_features=', r'\[\d\.\d+e-', r'\b[a-z]+_[a-z_]+\b', r'def ', r'import ', r'lambda', r'\{\'']
TEMPLATES = [report.TEMPLATE, report.TEMPLATE.parent/'common.typ', *sorted(report.SECTIONS_DIR.glob('*.typ'))]
DOMAIN = ('solar', 'electrolum', 'busbar', 'deitsch', 'elpv', 'mono', 'poly', 'crack')  # one dataset's words: its card's, never the code's

def pdf_text(pdf) -> str:
    from pypdf import PdfReader
    return '\n'.join(p.extract_text() for p in PdfReader(str(pdf)).pages).replace('\xad', '-')  # one glyph serves a hyphen and a hyphenation

def study_copy(tmp) -> Path:
    "A copy of the committed results with their figures, as a trial results folder"
    shutil.copytree(ROOT/'results', tmp/'results'); shutil.copytree(ROOT/'figures', tmp/'results'/'figures')
    return tmp/'results'

@pytest.fixture(scope='module')
def built(tmp_path_factory):
    "The study report built from a copy of the committed results and figures: (pdf, values)"
    results = study_copy(tmp_path_factory.mktemp('report'))
    SUITES['report'].study(Study(preset='study', results=str(results)))
    return results/'report'/'report.pdf', json.loads((results/'report'/'values.json').read_text())

def rebuild(values, tmp_path, figures=ROOT/'figures') -> str:
    "The text of the report typeset from `values`"
    return pdf_text(report.build_report(values, figures, tmp_path/'out'))

def test_report_has_at_most_ten_pages_every_section_and_no_code(built):
    pdf, v = built
    text = pdf_text(pdf)
    allowed = {'likely_defective'}  # none expected; a snake_case token anywhere means a column name or code leaked
    for pat in CODE:
        hits = [m for m in re.findall(pat, text) if m not in allowed]
        assert not hits, (pat, hits[:5])
    for s in SUITES.values():
        if s.values: assert s.title in text, s.name  # every suite's section, in the study's order
    assert [s['suite'] for s in v['sections']] == [n for n, s in SUITES.items() if s.values]
    for needed in ('The data', 'Against published results', 'What a practitioner should do', 'Limits', 'Hyperparameters'):
        assert needed in text

def test_a_report_over_ten_pages_is_refused_not_truncated(tmp_path, monkeypatch):
    long = tmp_path/'long.typ'
    long.write_text('#for i in range(11) [Page #i #pagebreak(weak: true)]')
    monkeypatch.setattr(report, 'TEMPLATE', long)
    with pytest.raises(RuntimeError, match='11 pages, more than 10'): report.build_report({}, tmp_path, tmp_path/'out')

def test_a_claim_is_decided_by_its_test_and_one_without_inputs_has_no_outcome():
    raw = dict(pretraining_seed_mean=(0.07, 0.01, 0.13),  # the seed as the unit: the mean gain over fractions, per seed
               pretraining_gain={1.0: (0.08, -0.02, 0.18), 0.05: (0.05, -0.01, 0.13)})  # every fraction's interval includes zero
    out = prose.check_claims(raw)
    assert out['pretraining-ahead-seed-level']['holds'] and out['pretraining-ahead-seed-level']['evidence'] == '+0.070 [+0.010, +0.130]'
    assert not out['pretraining-clear-every-fraction']['holds']  # the seed-level mean supports a claim the per-fraction intervals do not
    assert 'resolution-helps' not in out  # its inputs are missing: no outcome, no error
    raw['pretraining_seed_mean'] = (0.07, -0.04, 0.18)
    assert not prose.check_claims(raw)['pretraining-ahead-seed-level']['holds']
    a, b = dict(seeds=[0.628, 0.583, 0.644]), dict(seeds=[0.568, 0.555, 0.567])  # the study's best two backbones
    check = lambda a, b: prose.CLAIMS['best-backbone-separated'].check(dict(arch_valid=dict(a=a, b=b), arch_ranked=['a', 'b']))
    assert check(a, b) == (False, 'Welch t-test p = 0.09, 3 and 3 seeds')  # three seeds, a lead of 0.055: not separated
    assert check(dict(seeds=[0.70, 0.71, 0.72]), b)[0]

def test_a_flipped_claim_changes_the_sentence_not_the_build(built, tmp_path):
    _, v = built
    said = lambda t: 'clear of seed noise' in t.replace('\n', ' '), lambda t: 'not separated from seed noise' in t.replace('\n', ' ')
    before = v['holds']['best-backbone-separated']
    assert said[int(not before)](pdf_text(built[0]))
    v = json.loads(json.dumps(v)); v['holds']['best-backbone-separated'] = not before
    assert said[int(before)](rebuild(v, tmp_path))

def test_a_sentence_whose_claim_has_no_outcome_stops_the_build_while_its_section_is_present(built, tmp_path):
    v = json.loads(json.dumps(built[1])); del v['holds']['best-backbone-separated']
    with pytest.raises(UserError, match="claim 'best-backbone-separated' has no outcome"): rebuild(v, tmp_path)
    for k in [s['tables'] for s in v['sections'] if s['suite'] == 'architectures'][0] + ['best_arch', 'grid', 'cost', 'same_pretraining']: v.pop(k, None)
    for s in v['sections']:
        if s['suite'] == 'architectures': s['present'] = False
    assert 'Which backbone' in rebuild(v, tmp_path)  # its section absent, its sentences are not placed: the build goes through

def test_a_suite_without_a_fragment_gets_its_tables_under_its_heading(built, tmp_path):
    v = json.loads(json.dumps(built[1]))
    for s in v['sections']:
        if s['suite'] == 'imbalance': s['fragment'] = None
    text = rebuild(v, tmp_path)
    assert 'Class imbalance' in text and 'class-weighted loss' in text and 'was trained again with its cross-entropy' not in text

def test_the_template_picks_sentences_only_by_registered_claims_and_uses_every_one(tmp_path, monkeypatch):
    assert report.template_claims() == set(prose.CLAIMS)  # no dead claim, no sentence picked by a name nothing decides
    bad = tmp_path/'report.typ'
    bad.write_text((report.TEMPLATE.parent/'common.typ').read_text() + '\n#said("no-such-claim", [a], [b])')
    monkeypatch.setattr(report, 'TEMPLATE', bad)
    with pytest.raises(UserError, match='no-such-claim'): report.build_report({}, tmp_path, tmp_path/'out')

def test_every_figure_the_report_places_exists_and_was_written_by_a_suite():
    code = ''.join(p.read_text() for p in (ROOT/'ftl').rglob('*.py'))
    for name in {n for t in TEMPLATES for n in re.findall(r'plot\("(\w+)"', t.read_text())}:
        assert (ROOT/'figures'/f'{name}.pdf').exists(), name
        assert re.search(rf"['/]{name}['\)]", code), f'{name} is written by no module'

def test_no_value_in_the_source_swallows_the_punctuation_after_it():
    "typst ends an embedded expression (`#v.x;`, `#(v.x);`, `#if c [a] else [b];`) at a semicolon and drops it: write `\\;`"
    for t in TEMPLATES:
        src = t.read_text()
        assert not [m for m in re.findall(r'#(?:[a-z]\w*(?:\.\w+)+|\([^)]*\));', src) if not m.endswith('venue;')], t  # `_#c.venue;_` ends an emphasis
        assert not re.findall(r'\]\)*;', src), t  # the end of an `#if` block's content, or of a call like `#said(.., [..])`, in markup
        assert not re.findall(r'\]\s*\n\s*else\b', src), t  # an `else` on the line after its `]` is printed as a word

def test_no_dataset_fact_in_the_reports_code_or_template():
    files = [ROOT/'ftl'/'report.py', ROOT/'ftl'/'prose.py', ROOT/'ftl'/'method.py', *sorted((ROOT/'ftl'/'studies').glob('*.py')), *TEMPLATES]
    for f in files:
        hits = [w for w in DOMAIN if w in f.read_text().lower()]
        assert not hits, (f.name, hits)

def test_a_column_with_one_value_in_every_row_moves_out_of_the_table_into_words():
    t = dict(headers=['strategy', 'batch', 'seeds'], rows=[['fine-tune', '32', '0,1,2'], ['full-finetune', '32', '0']])
    kept, same = prose.lift_constant(t)
    assert kept == dict(headers=['strategy', 'seeds'], rows=[['fine-tune', '0,1,2'], ['full-finetune', '0']]) and same == ['batch: 32']
    assert prose.lift_constant(dict(headers=['a'], rows=[['1']]))[0]['headers'] == ['a']  # one row: nothing is 'constant'

def test_the_hyperparameter_table_states_early_stopping_and_the_epoch_restored_as_the_records_say():
    recs = [r for r in read_records(ROOT/'results'/'architectures') if r.hyperparams['early_stopping']]  # the quick runs: patience 3 of 8
    t = tables.hyperparameter_table(records_frame(recs)).iloc[0]
    assert t.restored.startswith('lowest valid loss: ') and ' of ' in t.restored
    assert t.early_stopping.startswith('on: valid loss, patience 3; ') and t.early_stopping.endswith('stopped early')
    whole = [r for r in read_records(ROOT/'results'/'headline') if r.config['monitor'] == 'last'][:1]  # no early stopping, final epoch kept
    w = tables.hyperparameter_table(records_frame(whole)).iloc[0]
    p = whole[0].config['patience']
    assert w.restored == f"last epoch: {w.epochs} of {w.epochs}" and w.early_stopping == f"off (patience {p})"
    res = read_records(ROOT/'results'/'resolution')  # no early stopping, yet the epoch of lowest validation loss restored
    assert all(r.hyperparams['early_stopping'] is None and r.hyperparams['model_selection']['monitor'] == 'valid_loss' for r in res)
    for _, x in tables.hyperparameter_table(records_frame(res)).iterrows():
        assert x.early_stopping.startswith('off (patience ') and x.restored.startswith('lowest valid loss: ')

def test_every_text_of_the_report_prints_at_7pt_or_more_figures_included(built):
    sizes = report.printed_text_sizes(built[0])
    assert {w for _, w, _ in sizes} - {'page'}, 'no figure text found: the measure would pass on anything'
    small = sorted({(page, where, size) for page, where, size in sizes if size < 7})
    assert not small, small

def test_the_restore_rules_table_names_the_metric_it_holds(built):
    from ftl.metrics import PRIMARY, get_metric
    heads = built[1]['selection']['headers']
    assert heads[0] == 'size (px)' and all(h.startswith(f'valid {get_metric(PRIMARY).label} at ') for h in heads[1:])

def test_gap_always_says_which_gap(built):
    text = re.sub(r'-\s+', '-', re.sub(r'\s+', ' ', pdf_text(built[0])))  # one space between words, none after a hyphen at a line's end
    bare = [text[max(0, m.start() - 30):m.end() + 10] for m in re.finditer(r'\bgaps?\b', text)
            if not re.search(r'(domain[ -]|train-valid )$', text[max(0, m.start() - 12):m.start()], re.I)]
    assert not bare, bare

CARD = dict(pretty_name='Tiny shapes', description='Shapes drawn for a test.', license='CC0', domain='Bars at three angles.',
            classes=dict(class0='a horizontal bar', class1='a vertical bar', class2='a diagonal bar'), split='none given',
            tasks=[dict(name='straight vs diagonal', description='merged', rule=dict(straight=['class0', 'class1'], diagonal=['class2']), reason='r')],
            citation=[dict(key='doe2020', authors=['J. Doe', 'R. Roe', 'A. Poe'], title='Shapes', venue='Journal of Tests', year=2020)],
            published=[dict(ref='doe2020', task='all classes', metric='accuracy', value=91.5, split='80/20', model='a CNN', quote='91.5%'),
                       dict(ref='doe2020', task='odd vs even', metric='accuracy', value=0.7, split='80/20', model='a CNN', quote='70%')])

def test_seeds_of_one_configuration_count_together_when_a_record_predates_a_config_field():
    from ftl import method
    recs = read_records(ROOT/'results'/'headline')
    assert any('loss' not in r.config for r in recs) and any('loss' in r.config for r in recs)  # seed 0 predates the loss field
    v = {}; method.seeds(v, {}, dict(headline=records_frame(recs)), None, None)
    assert v['seeds'] == '3 seeds in headline'

def test_values_written_for_typst_do_not_depend_on_string_hashing():
    "A set's order changes with PYTHONHASHSEED: values.json must not, or a clean clone's rebuild dirties git status"
    import subprocess, sys
    code = "from ftl.report import _plain; import json; print(json.dumps(_plain({frozenset('abcdefgh'): {1, 3, 2}, 'x': frozenset(['q', 'p'])})))"
    outs = {subprocess.run([sys.executable, '-c', code], env={**os.environ, 'PYTHONHASHSEED': str(h)}, capture_output=True, text=True, check=True).stdout
            for h in range(6)}
    assert outs == {'{"a, b, c, d, e, f, g, h": [1, 2, 3], "x": ["p", "q"]}\n'}

def test_the_cards_goals_meet_the_headline_on_their_task_met_or_missed_with_an_interval(synthetic):
    goals = [dict(task='all classes', metric='accuracy', value=82.5, why='a paper'), dict(task='straight vs diagonal', metric='macro-F1', value=0.7, why='w'),
             dict(task='odd vs even', metric='accuracy', value=0.9, why='no run of ours')]
    c = report.card_values(synthetic, dict(CARD, goals=goals))
    import pandas as pd
    rec = type('R', (), dict(vocab=synthetic.classes, n_test=200))()
    frames = dict(headline=pd.DataFrame([dict(record=rec, valid_macro_f1=0.8, test_accuracy=0.8, test_macro_f1=0.79, arch='mobilenetv2', size=32)]))
    raw = dict(headline_tasks={frozenset(['straight', 'diagonal']): dict(accuracy=0.9, macro_f1=0.75, n=200, model='m')})
    v = dict(data=dict(card=c, classes=synthetic.classes, name=synthetic.name))
    report.goals(v, raw, frames)
    acc, f1 = v['goals']  # the task without a run of ours is left out
    assert (acc['met'], acc['short'], acc['interval'], acc['inside']) == (False, '0.025', '[0.739, 0.850]', True)
    assert (f1['met'], f1['ours'], f1['interval']) == (True, '0.750', '')

def test_the_card_supplies_the_datasets_facts_and_its_published_results_meet_ours_with_an_interval(synthetic):
    c = report.card_values(synthetic, CARD)
    assert c['pretty_name'] == 'Tiny shapes' and c['classes']['class2'] == 'a diagonal bar' and c['published'][0]['ref'] == 'Doe et al. (2020)'
    assert c['published'][0]['value'] == pytest.approx(0.915)  # 91.5 and 0.915 are one figure
    assert report.card_values(synthetic)['measured_only'] and report.card_values(synthetic, dict(measured_only=True))['measured_only']
    with pytest.raises(UserError, match="card's classes"): report.card_values(synthetic, dict(CARD, classes=dict(a='x', b='y', c='z')))
    with pytest.raises(UserError, match="'nobody'"): report.card_values(synthetic, dict(CARD, published=[dict(CARD['published'][0], ref='nobody')]))
    import pandas as pd
    rec = type('R', (), dict(vocab=synthetic.classes, n_test=200))()
    frames = dict(headline=pd.DataFrame([dict(record=rec, valid_macro_f1=0.8, test_accuracy=0.8, test_macro_f1=0.79, arch='mobilenetv2', size=32)]))
    v = dict(data=dict(card=c, classes=synthetic.classes, name=synthetic.name))
    report.published(v, {}, frames)
    same, other = v['published']
    assert same['ours'].startswith('0.800 [0.739, 0.850], n = 200; theirs above')  # Wilson interval at 200 test images
    assert other['ours'] == '—' and other['note'] == "task not among this study's"

def test_a_report_with_a_card_names_the_dataset_and_lists_its_references(built, tmp_path, synthetic):
    v = json.loads(json.dumps(built[1]))
    v['data']['card'] = report.card_values(type('S', (), dict(name='x', classes=v['data']['classes'], info={}))(),
                                           dict(CARD, classes={k: f'meaning of {k}' for k in v['data']['classes']}, published=[]))
    v.pop('published', None)  # the study's own card lists some
    text = re.sub(r'\s+', '', rebuild(v, tmp_path))
    for needed in ('Transfer learning on Tiny shapes', 'meaning of defective', 'J. Doe, R. Roe, A. Poe. Shapes.', 'Bars at three angles.',
                   'The dataset card lists no published results'):
        assert needed.replace(' ', '') in text, needed

def test_a_study_with_suites_still_running_gets_a_report_that_states_their_absence(tmp_path):
    "A report in mid-study: unfinished suites' sections are one line each saying so and how to run them; nothing breaks"
    results = study_copy(tmp_path)
    for suite in ('data-efficiency', 'headline'): shutil.rmtree(results/suite)
    SUITES['report'].study(Study(preset='study', results=str(results)))
    text = pdf_text(results/'report'/'report.pdf')
    flat = re.sub(r'\s+', '', text)
    assert 'Method' in text and 'What a practitioner should do' in text and 'By validation macro-F1 the best backbone' in text
    for suite in ('data-efficiency', 'headline'):
        assert f'The {suite} suite has not run for this study: python experiments.py --suite {suite} --preset study --results'.replace(' ', '') in flat
    assert 'How much labelled data' in text and 'The headline models' in text  # the headings stay, their content goes
    assert 'The headline model (' not in text and 'Fine-tuning from pretrained weights beats' not in text  # nor does the abstract speak of them

def test_the_committed_study_rebuilt_in_another_clone_writes_the_same_bytes(tmp_path, monkeypatch):
    "No build date, folder or clone-specific link in what the report writes: the study's layout in two folders, every file identical"
    built = []
    for clone in ('a', 'b'):
        root = tmp_path/clone; study_copy(root); shutil.copytree(ROOT/'figures', root/'figures'); shutil.copytree(ROOT/'report', root/'report')
        monkeypatch.chdir(root)  # results/, figures/ and report/ as in a clone (a trial folder names itself in the report's commands)
        SUITES['report'].study(Study(preset='study'))
        built.append({f: (root/f).read_bytes() for f in ('report/report.pdf', 'report/values.json', 'figures/class_examples.png', 'figures/class_examples.pdf')})
    assert [f for f in built[0] if built[0][f] != built[1][f]] == []

def test_the_repository_link_comes_from_the_project_never_from_the_clones_git_remote(tmp_path, monkeypatch):
    import subprocess
    monkeypatch.delenv('FTL_REPO_URL', raising=False)
    monkeypatch.setattr(report, 'TEMPLATE', tmp_path/'report'/'report.typ'); (tmp_path/'report').mkdir()
    subprocess.run(['git', 'init', '-q', str(tmp_path)], check=True)
    subprocess.run(['git', '-C', str(tmp_path), 'remote', 'add', 'origin', '/where/this/clone/came/from'], check=True)
    (tmp_path/'pyproject.toml').write_text('[project]\nname = "x"\n')
    assert report.repo_url() == ''  # a clone's origin would put its own path on the title page
    (tmp_path/'pyproject.toml').write_text('[project]\nname = "x"\n[project.urls]\nHomepage = "https://a.example"\n'
                                           'Repository = "https://git.example/ftl"\n[tool.other]\nRepository = "not this"\n')
    assert report.repo_url() == 'https://git.example/ftl'
    monkeypatch.setenv('FTL_REPO_URL', 'https://mirror.example/ftl')
    assert report.repo_url() == 'https://mirror.example/ftl'

def test_the_main_job_on_a_clean_clone_rewrites_its_committed_outputs_byte_for_byte(tmp_path, monkeypatch):
    "The quick start's first command on a clone whose records are all committed: no training, and `git status` stays clean"
    from ftl.runner import run_suite
    root = tmp_path/'clone'; study_copy(root); shutil.rmtree(root/'results'/'figures'); shutil.copytree(ROOT/'figures', root/'figures')
    monkeypatch.chdir(root)
    monkeypatch.setattr('ftl.runner.run_config', lambda *a, **k: pytest.fail('the main job trained on a clone with every record'))
    run_suite(SUITES['strategies'], Study())  # what `python experiments.py --suite strategies` runs
    written = ('results/quick/hyperparameters.csv', 'results/quick/strategies_table.csv', 'figures/quick/curves_strategies.png')
    assert [f for f in written if (root/f).read_bytes() != (ROOT/f).read_bytes()] == []

def test_the_decisions_recorded_with_the_results_are_printed_as_written(built):
    pdf, v = built
    recorded = pd.read_csv(ROOT/'results'/'decisions.csv', dtype=str).to_dict('records')
    assert v['decisions'] == recorded and recorded
    flat = re.sub(r'\s+', '', pdf_text(pdf))
    assert all(re.sub(r'\s+', '', d['what'])[:60] in flat for d in recorded)
