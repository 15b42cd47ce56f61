"""The layout's rules, checked by an AST scan of grpo/, rewards/ and sandbox/ (issue 32):
no import circle (module-level or inside functions; `from . import sub` is an edge to
the submodule only), no function over 60 lines."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("grpo", "rewards", "sandbox")


def _modules() -> dict:
    mods = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            name = ".".join(f.relative_to(ROOT).with_suffix("").parts)
            mods[name[:-9] if name.endswith(".__init__") else name] = f
    return mods


def _targets(mods, cur, node) -> list:
    base = cur.split(".") if mods[cur].name == "__init__.py" else cur.split(".")[:-1]
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in mods]
    m = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else [])) \
        if node.level else node.module
    subs = [f"{m}.{a.name}" for a in node.names if f"{m}.{a.name}" in mods]
    return subs + ([m] if len(subs) < len(node.names) and m in mods else [])


def _graph() -> dict:
    mods = _modules()
    graph = {}
    for m, f in mods.items():
        graph[m] = {t for n in ast.walk(ast.parse(f.read_text())) if isinstance(n, (ast.Import, ast.ImportFrom))
                    for t in _targets(mods, m, n)} - {m}
    return graph


def _cycle(graph) -> list | None:
    """One import circle, as a list of modules, or None."""
    state, stack = {}, []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        stack.pop()
        return None
    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_no_import_circle():
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]     # the scan finds one
    found = _cycle(_graph())
    assert found is None, " -> ".join(found)


def test_no_function_over_60_lines():
    long = [f"{f.relative_to(ROOT)}:{n.name} ({n.end_lineno - n.lineno + 1})"
            for f in _modules().values() for n in ast.walk(ast.parse(f.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60]
    assert not long, long
