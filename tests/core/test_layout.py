"""The layout's rules, checked by an AST scan of grpo/, rewards/ and sandbox/ (issue 32):
no import circle (module-level or inside functions; `from . import sub` is an edge to
the submodule only), no function over 60 lines."""
import ast
import re
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


def _aliases() -> dict:
    """Every old flat module of grpo/ (issue 32) and the module it now names."""
    out = {}
    for f in (ROOT / "grpo").glob("*.py"):
        tree = ast.parse(f.read_text())
        for n in ast.walk(tree):
            if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "alias":
                out[f"grpo.{f.stem}"] = n.args[1].value
    return out


def test_the_old_import_paths_still_work_with_a_warning():
    import importlib
    import subprocess
    import sys
    aliases = _aliases()
    assert len(aliases) == 27 and aliases["grpo.trainer"] == "grpo.train.trainer"
    for old, new in aliases.items():
        assert importlib.util.find_spec(new) is not None, f"{old} names {new}, which does not exist"
    # A fresh interpreter: the old path is the new module itself, with a warning naming it.
    code = ("import warnings, sys; warnings.simplefilter('error', DeprecationWarning)\n"
            "try:\n    import grpo.losses\nexcept DeprecationWarning as w:\n    print(w)\n"
            "warnings.simplefilter('ignore')\n"
            "from grpo.losses import cispo_loss; from grpo.trainer import Trainer\n"
            "import grpo.algos.losses as L, grpo.train.trainer as T, grpo.policy\n"
            "print(cispo_loss is L.cispo_loss and Trainer is T.Trainer and sys.modules['grpo.policy'] is "
            "__import__('grpo.model.policy', fromlist=['x']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == ["grpo.losses moved to grpo.algos.losses; import it from there (the old "
                                       "path goes in the next release)", "True"]


def test_nothing_in_the_tree_imports_an_old_path():
    old = re.compile(r"\bgrpo\.(" + "|".join(m.split(".")[1] for m in _aliases()) + r")\b(?![/\w])")
    hits = [f"{f.relative_to(ROOT)}:{i}" for pkg in (*PACKAGES, "tests", "bench", "scripts")
            for f in (ROOT / pkg).rglob("*.py") if f.name not in ("test_layout.py", "_moved.py")
            for i, line in enumerate(f.read_text().splitlines(), 1) if old.search(line)]
    assert not hits, hits
