"The shape of the package: imports flow one way (no cycle, function-level imports included), modules stay small"
import ast
from pathlib import Path
import networkx as nx

PKG = Path(__file__).resolve().parents[1]/'ftl'

def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)

def imports(path: Path) -> set:
    "The ftl modules `path` imports anywhere in its body (module level or inside functions)"
    me, out = module_name(path), set()
    pkg = me if path.name == '__init__.py' else me.rsplit('.', 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = pkg.rsplit('.', node.level - 1)[0] if node.level else ''
            mod = '.'.join(x for x in (base, node.module) if x)
            names = [f'{mod}.{a.name}' for a in node.names]
            out |= {n for n in [mod, *names] if (PKG.parent/n.replace('.', '/')).with_suffix('.py').exists()
                    or (PKG.parent/n.replace('.', '/')/'__init__.py').exists()}
        elif isinstance(node, ast.Import): out |= {a.name for a in node.names if a.name.startswith('ftl.')}
    return {m for m in out if m.startswith('ftl') and m != me}

def test_no_import_cycle_anywhere_in_the_package():
    g = nx.DiGraph()
    for p in PKG.rglob('*.py'):
        g.add_edges_from((module_name(p), m) for m in imports(p) if m != 'ftl')  # every module imports the package root first
    cycles = list(nx.simple_cycles(g))
    assert not cycles, cycles

def test_the_import_checker_sees_a_function_level_cycle(tmp_path):
    "The check above can fail: a function-level import back up the chain is an edge"
    a = PKG/'analysis.py'
    assert 'ftl.train' in imports(a) and 'ftl.config' in imports(a)  # imported inside functions there

def test_no_module_over_300_lines():
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob('*.py') if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long
