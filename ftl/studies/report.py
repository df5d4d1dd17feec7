"The report: every complete suite's values and claims, typeset to a PDF of at most 10 pages"
from __future__ import annotations
import json
from ..config import PRESETS
from ..data import load_source
from ..records import records_frame
from ..runner import Study, SUITES, register, suite_records, complete_records
from ..report import values, build_report
from .. import figures

@register('report', kind='study', order=100)
def report(study: Study):
    "The PDF report (at most 10 pages) from the committed records, tables and figures; its claims checked against them"
    recs = {n: suite_records(n, study) for n, s in SUITES.items() if s.configs}
    frames = {n: records_frame(complete_records(n, study, rs)) for n, rs in recs.items() if n != 'smoke'}
    summary = study.layout.tables/'analysis'/'summary.json'  # the analysis is of one finished run, shown once that run is this study's
    mine = {r.key: r for rs in recs.values() for r in rs}
    analysed = mine.get(json.loads(summary.read_text())['model']) if summary.exists() else None
    source = load_source(study.dataset, 32)
    figures.class_examples(source, study.layout.figures/'class_examples')
    v = values(frames, study.layout, source, PRESETS, study.preset, analysed)
    print(f"report: {build_report(v, study.layout.figures, study.layout.report)} ({sum(c['holds'] for c in v['claims'])} claims checked)")
