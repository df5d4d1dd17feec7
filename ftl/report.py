"The PDF report: typesetting only. The findings module computes values and checks claims; typst places them in report/report.typ"
from __future__ import annotations
import json, os, subprocess
from pathlib import Path

__all__ = ['build_report', 'repo_url', 'page_count', 'MAX_PAGES', 'TEMPLATE']

MAX_PAGES = 10
TEMPLATE = Path(__file__).resolve().parents[1]/'report'/'report.typ'  # prose written by a person; numbers come in as values

def repo_url() -> str:
    "The repository link for the title page: $FTL_REPO_URL, else the git remote, else empty"
    if os.environ.get('FTL_REPO_URL'): return os.environ['FTL_REPO_URL']
    try: return subprocess.run(['git', 'remote', 'get-url', 'origin'], capture_output=True, text=True, cwd=TEMPLATE.parent).stdout.strip()
    except OSError: return ''

def page_count(pdf) -> int:
    from pypdf import PdfReader
    return len(PdfReader(str(pdf)).pages)

def build_report(values: dict, figures_dir, out_dir) -> Path:
    "Typeset the report from `values` (findings.values) and the figures; refuse (never truncate) a report over MAX_PAGES pages"
    import typst
    out_dir = Path(out_dir); out_dir.mkdir(parents=True, exist_ok=True)
    vals = out_dir/'values.json'
    vals.write_text(json.dumps(values, indent=1, default=lambda x: x.item() if hasattr(x, 'item') else str(x)))
    pdf = out_dir/'report.pdf'
    typst.compile(str(TEMPLATE), output=str(pdf), root='/',
                  sys_inputs=dict(values=str(vals.resolve()), figures=str(Path(figures_dir).resolve()), repo=repo_url()))
    if (n := page_count(pdf)) > MAX_PAGES: raise RuntimeError(f"The report has {n} pages, more than {MAX_PAGES}: shorten report/report.typ")
    return pdf
