"The report: every suite's section (or a line saying why it is absent) and its claims' outcomes, typeset to at most 10 pages"
from __future__ import annotations
import json
from dataclasses import fields
from ..config import PRESETS
from ..errors import UserError
from ..data import load_source
from ..records import records_frame
from ..runner import Study, SUITES, register, suite_records, shown_records
from ..report import values, build_report
from ..datasets import load_card
from ..models import get_arch
from .. import figures

def command(study: Study):
    "The command line that runs a suite for `study` (its dataset, preset and results folder where they are not the defaults)"
    flags = ''.join(f' --{f.name} {getattr(study, f.name)}' for f in fields(Study)
                    if f.name in ('dataset', 'preset', 'results') and getattr(study, f.name) != f.default)
    return lambda suite: f'python experiments.py --suite {suite}{flags}'

def _progress(name, study, recs: list, earlier: bool) -> dict:
    """How far suite `name` has run for `study`: runs done and wanted (0 while its configs wait on an earlier suite), its
    configs' architectures, and whether its section shows an earlier definition's records (`Suite.earlier`) meanwhile"""
    try: configs = SUITES[name].configs(study)
    except UserError: configs = []
    return dict(done=len(recs), want=len({c.key() for c in configs}), archs=sorted({get_arch(c.arch).title for c in configs}),
                earlier=earlier)

@register('report', kind='study', order=100)
def report(study: Study):
    "The PDF report (at most 10 pages) from the committed records, tables and figures; each comparative sentence picked by its claim's outcome"
    recs = {n: suite_records(n, study) for n, s in SUITES.items() if s.configs}
    shown = {n: shown_records(n, study, rs) for n, rs in recs.items() if n != 'smoke'}
    frames = {n: records_frame(rs) for n, (rs, _) in shown.items()}
    status = {n: _progress(n, study, rs, shown.get(n, ([], False))[1]) for n, rs in recs.items()}
    summary = study.layout.tables/'analysis'/'summary.json'  # the analysis is of one finished run, shown once that run is this study's
    mine = {r.key: r for rs in recs.values() for r in rs}
    analysed = mine.get(json.loads(summary.read_text())['model']) if summary.exists() else None
    source = load_source(study.dataset, 32, study.fixed.get('skip_bad_images', False))
    figures.class_examples(source, study.layout.figures/'class_examples')
    card = load_card(study.dataset, study.card, source).as_report()  # the given card, else the dataset's own, else measured only
    v = values(frames, study.layout, source, PRESETS, study.preset, analysed, card=card, status=status, command=command(study))
    held = sum(c['holds'] for c in v['claims'].values())
    print(f"report: {build_report(v, study.layout.figures, study.layout.report)} ({len(v['claims'])} claims decided, {held} hold)")
