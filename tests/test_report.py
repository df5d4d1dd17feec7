import json, re, shutil
from pathlib import Path
from ftl import report

SMOKE = sorted(Path('results/strategies').glob('*feature-extraction-noaug*.json'))

def test_report_builds_from_committed_records_within_ten_pages(tmp_path):
    assert SMOKE, 'a committed record is the fixture of this test'
    (tmp_path/'results'/'architectures').mkdir(parents=True)
    shutil.copy(SMOKE[0], tmp_path/'results'/'architectures'/SMOKE[0].name)
    report.write_suite_outputs('architectures', tmp_path/'results', tmp_path/'figures')
    assert (tmp_path/'results'/'architectures_table.md').exists() and (tmp_path/'figures'/'curves_architectures.png').exists()
    assert 'feature-extraction' in (tmp_path/'results'/'hyperparameters.md').read_text()
    pdf = report.build_report(tmp_path/'results', tmp_path/'figures', tmp_path/'report.pdf')
    pages = len(re.findall(rb'/Type\s*/Page[^s]', pdf.read_bytes()))
    assert pages >= 1 and pages <= 10
