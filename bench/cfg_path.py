"""Where a run's names are looked up: trace one `ftl.train` (2 epochs, synthetic data, or a folder given as argument) and count
the calls into ftl that receive the run's config, its dataset name or its architecture name; the modules they stop in; how
often each module is entered; and the calls that go back up the import layers (a module calling one that imports it).
    python bench/cfg_path.py [dataset]   ->  results/benchmark/cfg_path.txt"""
import ast, sys, warnings
from collections import Counter
from pathlib import Path
warnings.filterwarnings('ignore')
import ftl
from ftl.config import Config

PKG = Path(ftl.__file__).parent

def imports_of() -> dict:
    "Module -> the ftl modules it imports at its top level (the layers)"
    out = {}
    for f in PKG.rglob('*.py'):
        mod = f.relative_to(PKG).with_suffix('').as_posix().replace('/', '.')
        tree, deps = ast.parse(f.read_text()), set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level:
                base = mod.split('.')[:-node.level + 1 or None] if node.level > 1 else mod.split('.')[:-1]
                deps.add('.'.join(base + ([node.module] if node.module else [])) or node.names[0].name)
        out[mod] = deps
    return out

def above(imports) -> dict:
    "Module -> every module that imports it, directly or not"
    up = {m: set() for m in imports}
    for m in imports:
        todo, seen = list(imports[m]), set()
        while todo:
            d = todo.pop()
            if d in seen or d not in imports: continue
            seen.add(d); todo += imports[d]
        for d in seen: up[d].add(m)
    return up

def module_of(frame):
    f = Path(frame.f_code.co_filename)
    return f.relative_to(PKG).with_suffix('').as_posix().replace('/', '.') if PKG in f.parents else None

def trace(cfg):
    "The (caller module, callee module, function) of each ftl call that receives `cfg`, `cfg.dataset` or `cfg.arch`"
    names, calls = {cfg.dataset, cfg.dataset.partition(':')[2], cfg.arch} - {''}, []
    def prof(frame, event, arg):
        if event != 'call' or (callee := module_of(frame)) is None: return
        vals = [frame.f_locals.get(v) for v in frame.f_code.co_varnames[:frame.f_code.co_argcount + frame.f_code.co_kwonlyargcount]]
        if any(v is cfg or (isinstance(v, str) and v in names) for v in vals):
            calls.append((module_of(frame.f_back) if frame.f_back else None, callee, frame.f_code.co_name))
    sys.setprofile(prof)
    try: ftl.train(cfg)
    finally: sys.setprofile(None)
    return calls

if __name__ == '__main__':
    cfg = Config(dataset=sys.argv[1] if len(sys.argv) > 1 else 'synthetic', size=32, arch='efficientnet_lite0', epochs=2, bs=16)
    calls, up = trace(cfg), above(imports_of())
    upward = [c for c in calls if c[0] in up and c[1] in up[c[0]]]
    entered = Counter(c[1] for c in calls if c[0] != c[1])
    lines = [f"one ftl.train of {cfg.dataset!r} / {cfg.arch!r}: {len(calls)} calls receive the config or one of its names, "
             f"in {len(set(c[1] for c in calls))} modules; {len(upward)} go back up a layer",
             'modules entered (from another module): ' + ', '.join(f'{m} {n}' for m, n in entered.most_common()),
             'back up a layer: ' + ', '.join(f'{a} -> {b}.{f}' for a, b, f in upward),
             'calls: ' + ', '.join(f'{b}.{f}' for a, b, f in calls)]
    print('\n'.join(lines))
    Path('results/benchmark/cfg_path.txt').write_text('\n'.join(lines) + '\n')
