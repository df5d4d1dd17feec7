"""Compare the numbers of two builds of the report: every number printed by the old values.json (its text, not the raw
numbers behind the claims) and the old PDF, looked up in the new ones; prints what is missing, with its context.
Usage: python tools/compare_report.py OLD_DIR NEW_DIR [--no-figures]   (each holding values.json and report.pdf; a git
revision works for OLD_DIR as REV:report, e.g. house:report). --no-figures leaves the figures' text (tick labels, panel
titles) out of the PDF comparison: redrawn figures change their ticks, never a value of the text or the tables"""
import json, re, subprocess, sys, tempfile
from collections import Counter
from pathlib import Path

NUM = re.compile(r'[+-−]?\d[\d,]*\.?\d*')

def _read(where: str, name: str) -> bytes:
    "A file of a report folder, or of a git revision's folder (REV:path)"
    if ':' in where and not Path(where).exists():
        return subprocess.run(['git', 'show', f'{where}/{name}'], capture_output=True, check=True).stdout
    return (Path(where)/name).read_bytes()

def leaves(x, path=''):
    "Every string or number of a values tree, with its path (the raw numbers and claims left out: the report prints neither)"
    if isinstance(x, dict):
        for k, y in x.items():
            if path == '' and k in ('raw', 'claims', 'holds', 'evidence'): continue
            yield from leaves(y, f'{path}.{k}')
    elif isinstance(x, list):
        for i, y in enumerate(x): yield from leaves(y, f'{path}[{i}]')
    elif isinstance(x, (str, int, float)) and not isinstance(x, bool): yield path, str(x)

def numbers(text: str) -> Counter: return Counter(m.replace('−', '-').lstrip('+-') for m in NUM.findall(text) if any(c.isdigit() for c in m))

def pdf_text(data: bytes, figures=True) -> str:
    "The text of a PDF, with or without the text inside its figures (form XObjects)"
    import logging
    from pypdf import PdfReader
    from pypdf.generic import NameObject
    logging.getLogger('pypdf').setLevel(logging.ERROR)  # a figure left out is reported as undecodable: expected here
    with tempfile.NamedTemporaryFile(suffix='.pdf') as f:
        f.write(data); f.flush()
        pages = PdfReader(f.name).pages
        if not figures:
            for p in pages: p['/Resources'].pop(NameObject('/XObject'), None)
        return '\n'.join(p.extract_text() for p in pages)

def main(old, new, *flags):
    ov, nv = (json.loads(_read(w, 'values.json')) for w in (old, new))
    have = numbers(' '.join(s for _, s in leaves(nv)))
    missing = [(p, s) for p, s in leaves(ov) for n in numbers(s) if n not in have]
    print(f'values: {sum(1 for _ in leaves(ov))} old leaves; numbers absent from the new values: {len(missing)}')
    for p, s in missing: print(f'  {p}: {s[:100]}')
    figs = '--no-figures' not in flags
    ot, nt = (pdf_text(_read(w, 'report.pdf'), figs) for w in (old, new))
    gone = numbers(ot) - numbers(nt)
    print(f"PDF: {sum(numbers(ot).values())} numbers in the old text{'' if figs else ' outside the figures'}; absent (or fewer) in the new: {sum(gone.values())}")
    for n, k in sorted(gone.items()):
        i = ot.find(n); print(f'  {n} (x{k}): ...{ot[max(0, i - 60):i + 40].replace(chr(10), " ")}...')

if __name__ == '__main__': main(*sys.argv[1:])
