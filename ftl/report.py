"""The PDF report: the values its prose prints, gathered from the dataset (measured, and its card's facts), every suite's
`values` in registration order and the study-wide sections (ftl.method); its claims decided; then typeset with typst
from report/report.typ, which places a fragment per suite (report/sections/<suite>.typ) and picks each comparative
sentence by its claim's outcome"""
from __future__ import annotations
import json, os, re
from collections import Counter
from pathlib import Path
import numpy as np, pandas as pd
from .errors import UserError
from .strategies import describe_augmentation
from .runner import SUITES
from .evaluate import majority_baseline
from .prose import num, pct, title, claim, check_claims, wilson, CLAIMS, MONITOR_NAMES
from . import method

__all__ = ['values', 'card_values', 'build_report', 'repo_url', 'page_count', 'printed_text_sizes', 'MAX_PAGES', 'TEMPLATE', 'SECTIONS_DIR']

MAX_PAGES = 10
TEMPLATE = Path(__file__).resolve().parents[1]/'report'/'report.typ'  # prose written by a person; numbers come in as values
SECTIONS_DIR = TEMPLATE.parent/'sections'  # one typst fragment per suite (optional: without one, the suite's tables are printed)

# --- the dataset: what was measured, and what its card says ---------------------------------------------------------------

def _native_sizes(source) -> Counter:
    "Width x height of the images as stored (before ftl resizes them): every file's header, or the stored arrays' shape"
    from PIL import Image
    files, sizes = source.info.get('files'), Counter()
    if files is None:
        if str(source.info.get('file', '')).endswith('.npz'):
            with np.load(source.info['file']) as z: h, w = z['test_images'].shape[1:3]
        else: h, w = source.images.shape[1:3]
        return Counter({(int(w), int(h)): len(source.labels)})
    for f in files[::max(1, len(files)//5000)]:  # headers only; a sample of at most about 5,000 files
        with Image.open(f) as im: sizes[im.size] += 1
    return sizes

def _cite(c: dict) -> dict:
    "A card citation with its short form for the text (Smith et al. (2019)) and its authors joined"
    a = c.get('authors') or []
    if isinstance(a, str): a = [] if a.startswith('(') else [x.strip() for x in re.split(';| and ' if re.search(';| and ', a) else ',', a) if x.strip()]
    surname = lambda x: x.split(',')[0].strip() if ',' in x else x.split()[-1]
    short = surname(a[0]) + (' et al.' if len(a) > 2 else f' and {surname(a[1])}' if len(a) == 2 else '') if a else c.get('venue') or c.get('key', '')
    return dict(key=c.get('key', ''), authors=('; ' if any(',' in x for x in a) else ', ').join(a), title=c.get('title', ''), venue=c.get('venue', ''), year=str(c.get('year', '')),
                short=f"{short} ({c.get('year', 'n.d.')})")

def _value(x) -> float:
    "A published figure as a share: 88.42, '88.42 %' and 0.8842 are all 0.8842"
    x = float(str(x).strip().rstrip('%').strip())
    return x/100 if x > 1 else x

def card_values(source, card: dict | None = None) -> dict:
    """The dataset card's facts as the report prints them (`card`: the card as a plain dict; None, or `measured_only`: no
    card, so nothing but the name the data were loaded by). Its classes must be the measured ones"""
    name = source.name.split(':', 1)[-1].rstrip('/').split('/')[-1].split('?')[0]
    if card is None or card.get('measured_only'):
        return dict(measured_only=True, pretty_name=name, description='', license=source.info.get('license', ''), citation=[],
                    classes={c: '' for c in source.classes}, domain='', split='', split_note='', tasks=[], published=[], goals=[], ordered=False)
    meanings = dict(card.get('classes') or {})
    if meanings and set(meanings) != set(source.classes):
        raise UserError(f"The dataset card's classes {sorted(meanings)} are not the classes measured in {source.name} "
                        f"{sorted(source.classes)}: correct the card's `classes`, or pass the card of this dataset")
    cites = [_cite(c) for c in card.get('citation') or []]
    keys = {c['key']: c for c in cites}
    published = []
    for e in card.get('published') or []:
        if e.get('ref') not in keys: raise UserError(f"The dataset card's published entry {e} cites {e.get('ref')!r}, which is not a key of its `citation` list {sorted(keys)}: add the citation or correct the key")
        published.append(dict(e, ref=keys[e['ref']]['short'], value=_value(e['value'])))
    tasks = [dict(name=t['name'], description=t.get('description', ''), rule={k: list(x) for k, x in t.get('rule', {}).items()},
                  reason=t.get('reason', '')) for t in card.get('tasks') or []]
    return dict(measured_only=False, pretty_name=card.get('pretty_name') or name, description=card.get('description', ''),
                license=card.get('license', ''), citation=cites, classes={c: meanings.get(c, '') for c in source.classes},
                domain=card.get('domain') or '', split=card.get('split', ''), split_note=card.get('split_note', ''), tasks=tasks, published=published,
                goals=[dict(g, value=_value(g['value'])) for g in card.get('goals') or []], ordered=bool(card.get('ordered')))

def data_values(source, card, raw) -> dict:
    "What the report says about the data: measured (classes, counts per class and split, native size and mode) and the card's"
    sizes = _native_sizes(source)
    (w, h), _ = sizes.most_common(1)[0]
    raw['native_px'] = min(w, h)
    split_counts = {s: source.counts(s) for s in ('train', 'valid', 'test')}
    counts, fracs = source.counts(), source.info.get('split_fracs')
    big, small = max(counts, key=counts.get), min(counts, key=counts.get)
    raw['imbalance'] = counts[big]/max(counts[small], 1)
    base = majority_baseline(dict(per_class={c: dict(support=n) for c, n in split_counts['test'].items()}))
    c = card_values(source, card)
    raw['ordered'] = c['ordered']
    cols = {'class': lambda k: k, **{s: (lambda k, s=s: num(split_counts[s][k])) for s in split_counts}, 'all': lambda k: num(counts[k])}
    rows = [[f(k) for f in cols.values()] for k in source.classes]
    return dict(name=source.name, n=num(len(source.labels)), classes=list(source.classes), counts={k: num(x) for k, x in counts.items()},
                split={s: num(sum(x.values())) for s, x in split_counts.items()},
                per_split={s: {k: num(x) for k, x in cs.items()} for s, cs in split_counts.items()},
                valid_counts={k: num(x) for k, x in split_counts['valid'].items()},
                valid_rarest=dict(name=min(split_counts['valid'], key=split_counts['valid'].get), n=num(min(split_counts['valid'].values())),
                                  step=pct(1/max(min(split_counts['valid'].values()), 1), 0)),
                class_table=dict(headers=list(cols), rows=rows + [['all', *[num(sum(x.values())) for x in split_counts.values()], num(len(source.labels))]]),
                split_fracs=[pct(f, 0) for f in fracs or ()], own_split=fracs is None,
                native=f'{w} × {h}' if len(sizes) == 1 else f"{w} × {h} (the most common of {len(sizes)} sizes)", native_px=num(min(w, h)),
                mode='gray' if source.mode == 'L' else 'colour', majority=big, rarest=small, ratio=f'{raw["imbalance"]:.0f}' if raw['imbalance'] >= 2 else f'{raw["imbalance"]:.1f}',
                baseline={k: num(x) for k, x in base.items()}, card=c)

@claim('classes-imbalanced', 'the largest class has at least twice as many images as the smallest', 'a fact of the counts')
def _(r): return r['imbalance'] >= 2

# --- against published results: the card's figures beside the study's own on the same task -------------------------------

METRICS = dict(accuracy='accuracy', macrof1='macro_f1')

def _own(frames, v) -> dict:
    "The study's own test numbers per task (frozenset of classes): the headline model's, else the best run on validation"
    own = {}
    for suite in ('headline', *[s for s in frames if s != 'headline']):
        f = frames.get(suite, pd.DataFrame())
        for _, r in (f.sort_values('valid_macro_f1', ascending=False).iterrows() if len(f) else []):
            k = frozenset(r.record.vocab)
            if k in own: continue
            own[k] = dict(accuracy=r.test_accuracy, macro_f1=r.test_macro_f1, n=r.record.n_test,
                          model=f"{'headline' if suite == 'headline' else 'best single run on validation of the finished suites'}, {title(r.arch)} at {r['size']} px")
    return own

def _task_key(task: str, v) -> frozenset | None:
    "A card entry's task as the study's classes (a frozenset): the dataset's own ('' or its name) or a card task ('defective', or '<dataset>-defective'); None for another"
    card, own_name, task = v['data']['card'], v['data']['name'].lower(), str(task or '').strip().lower()
    tasks = {**{t['name'].lower(): frozenset(t['rule']) for t in card['tasks']}, **{f"{own_name}-{t['name'].lower()}": frozenset(t['rule']) for t in card['tasks']}}
    return tasks.get(task, frozenset(v['data']['classes']) if task in ('', 'classes', 'all classes', own_name) else None)

def _metric(name):
    "A card's metric name ('accuracy', 'macro-F1', ...) as the key of the study's numbers; None for one not measured here"
    return METRICS.get(re.sub(r'[^a-z0-9]', '', str(name).lower()))

def _accuracy_interval(x, n) -> tuple:
    "The 95 % binomial (Wilson) interval of accuracy `x` on `n` test images"
    return wilson(round(x*n), n)

def goals(v, raw, frames):
    "The card's goals, each beside the study's own test number on its task (accuracy with its 95 % Wilson interval): met or missed, by how much"
    own, rows = {**_own(frames, v), **raw.get('headline_tasks', {})}, []
    for g in v['data']['card'].get('goals') or []:
        key, metric = _task_key(g['task'], v), _metric(g['metric'])
        o = own.get(key) if key is not None and metric else None
        if o is None: continue  # no run of ours on this task, or a metric not measured here
        x, row = o[metric], dict(task=str(g.get('task_words') or g['task']), metric=str(g['metric']), goal=num(g['value']), why=str(g['why']), model=o['model'])
        row.update(ours=num(x), met=bool(x >= g['value']), short=num(g['value'] - x) if x < g['value'] else '', interval='', inside=False)
        if metric == 'accuracy':
            lo, hi = _accuracy_interval(x, o['n'])
            row.update(interval=f'[{lo:.3f}, {hi:.3f}]', inside=bool(lo <= g['value'] <= hi))
        rows.append(row)
    if rows: v['goals'] = rows

def published(v, raw, frames):
    "The card's published figures, each beside the study's own number on the same task with a 95 % binomial interval at the test size"
    card = v['data']['card']
    if not card['published']: return
    own, rows = {**_own(frames, v), **raw.get('headline_tasks', {})}, []  # the headline's numbers per task where it ran
    for e in card['published']:
        task = str(e.get('task', '')).strip()
        key = _task_key(task, v)
        metric = _metric(e.get('metric', ''))
        o = own.get(key) if key is not None else None
        # a task the card assumes is worded by its task_words
        row = dict(ref=e['ref'], task=str(e.get('task_words') or task or 'all classes'),
                   split=str(e.get('split', '')), metric=str(e.get('metric', '')), model=str(e.get('model', '')),
                   value=num(e['value']), ours='—', position='—',
                   note='task not among this study\'s' if key is None else 'no run of ours on this task' if o is None else
                        "metric not measured here" if metric is None else o['model'])
        if o is not None and metric is not None:
            x = o[metric]
            row['ours'] = num(x)
            if metric == 'accuracy':  # a share of the test images: its binomial (Wilson) interval at the test size
                lo, hi = _accuracy_interval(x, o['n'])
                row['position'] = 'inside' if lo <= e['value'] <= hi else 'above' if e['value'] > hi else 'below'
                row['ours'] += f" [{lo:.3f}, {hi:.3f}], n = {o['n']}; theirs {row['position']}"
        rows.append(row)
    v['published'] = rows

# --- the sections: every suite's, in registration order, present or its absence stated -------------------------------------

def _section(s, added: list, v: dict, status: dict, command) -> dict:
    "A suite's section for the template: its fragment (or its tables, without one), or one line saying why it is absent"
    frag = SECTIONS_DIR/f'{s.name}.typ'
    st = (status or {}).get(s.name)
    why = ('' if added else
           f"has not finished for this study ({st['done']} of {st['want']} runs); this resumes it" if st and 0 < st['done'] < st['want'] else
           "ran, but its section needs the results of suites that have not run; run those, then" if st and st['want'] and st['done'] >= st['want'] else
           "has not run for this study")
    return dict(suite=s.name, title=s.title or s.name, present=bool(added), fragment=f'sections/{s.name}.typ' if frag.exists() else None,
                tables=[k for k in added if isinstance(v[k], dict) and {'headers', 'rows'} <= set(v[k])], absent=why,
                command=command(s.name) if command else f'python experiments.py --suite {s.name}')

def values(frames: dict, layout, source, presets: dict, preset: str, analysed=None, card: dict | None = None,
           status: dict | None = None, command=None) -> dict:
    """Everything the report prints, formatted, and the claims' outcomes, from the records (`frames`: complete suites),
    `layout`'s files, the dataset (`source`) and its card (`card`, a plain dict, or None), the record of the model the
    analysis studied (`analysed`), each suite's progress (`status`: name -> `studies.report._progress`) and `command(suite)`,
    the command line that runs a suite for this study"""
    v, raw = {}, {}
    v['data'] = data_values(source, card, raw)
    p = {**presets[preset], 'name': preset, 'analysed': analysed}
    v['preset'] = dict(name=preset, size=num(p['size']), epochs=num(p['epochs']), patience=num(p['patience']), bs=num(p['bs']),
                       seeds=num(len(p['seeds'])), augment_arms=list(p['augment_arms']),
                       augment_words=[f"{a} ({describe_augmentation(a)['description']})" for a in p['augment_arms'] if a != 'none'],
                       restore=MONITOR_NAMES[p.get('monitor', 'valid_loss')], whole=p['patience'] >= p['epochs'])
    v['sections'], v['progress'] = [], status or {}
    for s in SUITES.values():
        if not s.values: continue
        before = set(v)
        s.values(v, raw, frames, layout, p)
        v['sections'].append(_section(s, [k for k in v if k not in before], v, status, command))
    for section in method.SECTIONS: section(v, raw, frames, layout, p)
    published(v, raw, frames)
    goals(v, raw, frames)
    v['claims'] = check_claims(raw)
    v['holds'], v['evidence'] = ({k: c[f] for k, c in v['claims'].items()} for f in ('holds', 'evidence'))
    v['raw'] = raw
    return v

# --- typesetting ----------------------------------------------------------------------------------------------------------

def repo_url() -> str:
    """The repository link for the title page: $FTL_REPO_URL, else pyproject.toml's `Repository` under [project.urls], else empty.
    Never the git remote: a clone's remote is wherever it was cloned from, and the same records would typeset another PDF"""
    if os.environ.get('FTL_REPO_URL'): return os.environ['FTL_REPO_URL']
    toml = TEMPLATE.parent.parent/'pyproject.toml'
    m = re.search(r'^\[project\.urls\][^\[]*?^Repository\s*=\s*"([^"]+)"', toml.read_text(), re.M | re.S) if toml.exists() else None
    return m.group(1) if m else ''

def page_count(pdf) -> int:
    from pypdf import PdfReader
    return len(PdfReader(str(pdf)).pages)

def _times(m, n) -> list:
    "The PDF matrix product m x n of two [a b c d e f] matrices"
    a, b, c, d, e, f = m; A, B, C, D, E, F = n
    return [a*A + b*C, a*B + b*D, c*A + d*C, c*B + d*D, e*A + f*C + E, e*B + f*D + F]

def printed_text_sizes(pdf) -> list:
    """(page, where, size) of every piece of text in `pdf` as printed: its font size times every scale applied to it (text
    matrix, transformations, the scale of the figure it sits in); `where` is 'page' or the figure's (form XObject's) name"""
    from pypdf import PdfReader
    from pypdf.generic import ContentStream
    reader, out = PdfReader(str(pdf)), []
    def walk(stream, resources, ctm, page, where):
        stack, tm, size = [], [1, 0, 0, 1, 0, 0], 0.0
        for args, op in ContentStream(stream, reader).operations:
            if op == b'q': stack.append(ctm)
            elif op == b'Q': ctm = stack.pop()
            elif op == b'cm': ctm = _times([float(x) for x in args], ctm)
            elif op == b'BT': tm = [1, 0, 0, 1, 0, 0]
            elif op == b'Tm': tm = [float(x) for x in args]
            elif op == b'Tf': size = float(args[1])
            elif op in (b'Tj', b'TJ', b"'", b'"'):
                a, b, c, d, _, _ = _times(tm, ctm); out.append((page, where, round(size*abs(a*d - b*c)**0.5, 2)))
            elif op == b'Do':
                x = resources['/XObject'][args[0]].get_object()
                if x['/Subtype'] == '/Form':
                    walk(x, x.get('/Resources', resources), _times([float(v) for v in x.get('/Matrix', [1, 0, 0, 1, 0, 0])], ctm), page,
                         where if where != 'page' else str(args[0]))
    for i, pg in enumerate(reader.pages, 1): walk(pg.get_contents(), pg['/Resources'], [1, 0, 0, 1, 0, 0], i, 'page')
    return out

def template_claims(template=None) -> set:
    "The claim names the template and its fragments pick sentences by (`said(\"name\", ...)`)"
    t = Path(template or TEMPLATE)
    return {m for f in [t, *sorted((t.parent/'sections').glob('*.typ'))] if f.exists() for m in re.findall(r'said\("([\w-]+)"', f.read_text())}

def _plain(x):
    """`x` as JSON typst can read: numpy scalars as numbers, NaN and infinities as null, tuples and keys as lists and strings;
    sets sorted (as keys: their sorted items joined), so the file's bytes never depend on Python's string hashing"""
    key = lambda k: ', '.join(sorted(map(str, k))) if isinstance(k, (set, frozenset)) else str(k)
    if isinstance(x, dict): return {key(k): _plain(y) for k, y in x.items()}
    if isinstance(x, (set, frozenset)): return sorted(_plain(y) for y in x)
    if isinstance(x, (list, tuple)): return [_plain(y) for y in x]
    if hasattr(x, 'item') and not isinstance(x, str): x = x.item()
    if isinstance(x, float) and not np.isfinite(x): return None
    return x if isinstance(x, (str, int, float, bool, type(None))) else str(x)

def build_report(values: dict, figures_dir, out_dir) -> Path:
    """Typeset the report from `values` and the figures. Refused: a template that picks a sentence by a claim no module
    registers, one whose section is present while the claim has no outcome, and (never truncated) a report over MAX_PAGES pages"""
    import typst
    if (unknown := template_claims() - set(CLAIMS)):
        raise UserError(f"report/report.typ picks sentences by claims no study module registers: {sorted(unknown)}; register them (@claim) or correct the names")
    out_dir = Path(out_dir); out_dir.mkdir(parents=True, exist_ok=True)
    values = {**values, 'figures': sorted(f.stem for f in Path(figures_dir).glob('*.pdf'))}  # the figures the suites have written
    vals = out_dir/'values.json'
    vals.write_text(json.dumps(_plain(values), indent=1, allow_nan=False))
    pdf = out_dir/'report.pdf'
    try: typst.compile(str(TEMPLATE), output=str(pdf), root='/',
                       sys_inputs=dict(values=str(vals.resolve()), figures=str(Path(figures_dir).resolve()), repo=repo_url()))
    except typst.TypstError as e:
        if 'has no outcome' in str(e): raise UserError(f"{e}: its section is present but the claim's inputs are missing; compute them in its study module or guard the sentence") from None
        raise RuntimeError(f"typst could not typeset the report:\n{getattr(e, 'diagnostic', e)}") from None
    if (n := page_count(pdf)) > MAX_PAGES: raise RuntimeError(f"The report has {n} pages, more than {MAX_PAGES}: shorten report/report.typ")
    return pdf
