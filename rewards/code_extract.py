"""Find the program in a model's answer: the fenced block that defines the
task's entry point, plus the helper blocks it needs, without the "Example
usage", test and output blocks models like to add after it.

Fences: ```` ``` ```` or ``~~~`` (3 or more), indented or not (inside a list
item), closed by the same character at least as long; an unclosed last fence
runs to the end.  A block is *code* when its info string is empty or a Python
tag and it parses as Python; *output* otherwise (```text, ```bash, "3 5" ...).

>>> extract_code("```python\\ndef f(x):\\n    return x\\n```\\nUsage:\\n```python\\nprint(f(2))\\n```", "f")
'def f(x):\\n    return x'
>>> extract_code("~~~py\\nimport math\\n~~~\\n1. then\\n   ```python\\n   def g():\\n       return math.pi\\n   ```", "g")
'import math\\n\\ndef g():\\n    return math.pi'
>>> extract_code("no fences at all: x = 1")
'no fences at all: x = 1'
"""

from __future__ import annotations

import ast
import re

# Linear-time: the info word and the rest of the line cannot overlap.
_OPEN = re.compile(r"^([ \t]*)(`{3,}|~{3,})[ \t]*([^`\s]*)(?:[ \t][^`]*)?$")
_PY_TAGS = {"", "python", "python3", "py", "py3", "pycon", "ipython", "{.python}", "sage"}
_USAGE_WORDS = re.compile(r"^[ \t]*#[^\n]*\b(usage|example|test|tests|testing|demo|output)\b",
                          re.I | re.M)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_SETUP = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign) + _DEFS
_STDIN = re.compile(r"\binput[ \t]*\(|sys\.stdin|open\([ \t]*0\b|fileinput|os\.read\([ \t]*0\b")
_MAX_PARSE = 200_000  # characters; a bigger block is taken as is, unparsed


class Block:
    def __init__(self, lang: str, code: str):
        self.lang, self.code = lang.lower().strip("{}."), code.strip("\n")
        self.tree = _parse(self.code) if self.lang in _PY_TAGS else None

    @property
    def is_code(self) -> bool:
        """Parses as Python, and is not just values (an output block: ``4``, ``[1, 2]``)."""
        return (self.tree is not None and bool(self.tree.body)
                and not all(isinstance(n, ast.Expr) and _is_literal(n.value) for n in self.tree.body))

    def reads_stdin(self) -> bool:
        return bool(_STDIN.search(self.code))

    def defines(self) -> set[str]:
        out = set()
        for node in self.tree.body if self.tree else ():
            if isinstance(node, _DEFS):
                out.add(node.name)
            elif isinstance(node, ast.Assign):
                out.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                out.update((a.asname or a.name).split(".")[0] for a in node.names)
        return out

    def has_defs(self) -> bool:
        return any(isinstance(n, _DEFS) for n in self.tree.body) if self.tree else False

    def is_helper(self) -> bool:
        """Only imports, definitions and assignments, and at least one import or def."""
        body = self.tree.body if self.tree else []
        return (bool(body) and all(isinstance(n, _SETUP) or _is_main_guard(n) for n in body)
                and any(isinstance(n, (ast.Import, ast.ImportFrom) + _DEFS) for n in body))

    def is_usage(self) -> bool:
        """No definitions, no input read, and calls/prints/asserts (or a comment saying so)."""
        if self.has_defs() or self.reads_stdin():
            return False
        return bool(_USAGE_WORDS.search(self.code)) or any(
            isinstance(n, (ast.Expr, ast.Assert, ast.For, ast.If)) for n in self.tree.body)


def _is_literal(node) -> bool:
    if isinstance(node, (ast.Constant, ast.Name)):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(_is_literal(e) for e in (*node.keys, *node.values) if e is not None)
    if isinstance(node, ast.UnaryOp):
        return _is_literal(node.operand)
    return False


def _is_main_guard(node) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _parse(code: str):
    if len(code) > _MAX_PARSE:
        return ast.Module(body=[ast.Pass()], type_ignores=[])
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(info string's first word, content) of each fenced block, in order."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = len(m.group(1).expandtabs(4)), m.group(2), m.group(3)
        close = re.compile(r"^[ \t]*" + re.escape(fence[0]) + "{%d,}[ \t]*$" % len(fence))
        body, i = [], i + 1
        while i < len(lines) and not close.match(lines[i]):
            body.append(_dedent(lines[i], indent))
            i += 1
        out.append((lang, "\n".join(body)))
        i += 1
    return out


def _dedent(line: str, n: int) -> str:
    k = 0
    while k < len(line) and k < n and line[k] in " \t":
        k += 1
    return line[k:]


def _pick(blocks: list[Block], entry_point: str | None) -> Block | None:
    if entry_point:
        main = [b for b in blocks if entry_point in b.defines() and b.has_defs()]
        main = main or [b for b in blocks if entry_point in b.defines()]
        if main:
            return main[-1]
    for want in (lambda b: b.has_defs() or b.reads_stdin(), lambda b: not b.is_usage(),
                 lambda b: True):
        found = [b for b in blocks if want(b)]
        if found:
            return found[-1]
    return None


def drop_stdin_tail(code: str, entry_point: str | None) -> str:
    """For a function task, cut a tail of top-level statements that reads
    stdin (``n = int(input()); print(f(n))``, or ``main()`` whose body does):
    with no input it would die of EOFError and fail a right function.

    >>> drop_stdin_tail("def f(n):\\n    return n\\nn = int(input())\\nprint(f(n))", "f")
    'def f(n):\\n    return n'
    """
    tree = _parse(code) if entry_point and len(code) <= _MAX_PARSE else None
    if tree is None:
        return code
    lines = code.split("\n")
    src = lambda n: "\n".join(lines[n.lineno - 1:n.end_lineno])  # noqa: E731
    readers = {n.name for n in tree.body if isinstance(n, _DEFS) and _STDIN.search(src(n))}
    for k, node in enumerate(tree.body):
        if isinstance(node, _DEFS + (ast.Import, ast.ImportFrom)) or _is_main_guard(node):
            continue
        calls = {c.func.id for c in ast.walk(node)
                 if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
        if _STDIN.search(src(node)) or calls & readers:
            defined = {n.name for n in tree.body[:k] if isinstance(n, _DEFS)}
            later_defs = any(isinstance(n, _DEFS) for n in tree.body[k:])
            if entry_point in defined and not later_defs:
                return "\n".join(lines[:node.lineno - 1]).rstrip()
            return code
    return code


def extract_code(text: str, entry_point: str | None = None) -> str:
    """The program in ``text`` (see the module doc); the whole text if no block is code."""
    return drop_stdin_tail(_extract(text, entry_point), entry_point)


def unfenced(text: str) -> str:
    """An answer without fences: the last ``<answer>`` section's content, else
    the text after ``</think>`` (R1-format completions put the code there bare).
    Linear time: plain searches, no regex that could backtrack.

    >>> unfenced("<think>plan</think>\\n<answer>\\ndef f():\\n    return 1\\n</answer>")
    'def f():\\n    return 1'
    """
    start = text.rfind("<answer>")
    if start >= 0:
        body = text[start + len("<answer>"):]
        end = body.find("</answer>")
        body = body if end < 0 else body[:end]
        if body.strip():
            return body.strip("\n")
    end = text.find("</think>")
    return (text if end < 0 else text[end + len("</think>"):]).strip("\n")


def _extract(text: str, entry_point: str | None) -> str:
    raw = fenced_blocks(text)
    if not raw:
        return unfenced(text)
    blocks = [Block(lang, code) for lang, code in raw]
    code_blocks = [b for b in blocks if b.is_code]
    main = _pick(code_blocks, entry_point)
    if main is None:  # nothing parses: the last Python-tagged (or any) block, as is
        tagged = [b for b in blocks if b.lang in _PY_TAGS]
        return (tagged or blocks)[-1].code
    taken, used = main.defines(), _names_used(main)
    helpers = []
    for b in code_blocks:
        if b is main or not b.is_helper():
            continue
        if entry_point and entry_point in b.defines():
            continue  # an earlier draft of the solution itself
        if not entry_point and not (b.defines() - taken) & used:
            continue  # without an entry point, only blocks the program needs
        helpers.append(b)
    return "\n\n".join([b.code for b in helpers] + [main.code])


def defines(code: str, name: str) -> bool:
    """Does ``code`` parse and define ``name`` (def, class or assignment) at top level?

    >>> defines("def f():\\n    pass", "f"), defines("f()", "f"), defines("def f(", "f")
    (True, False, False)
    """
    block = Block("python", code)
    return block.tree is not None and name in block.defines()


def _names_used(block: Block) -> set[str]:
    return {n.id for n in ast.walk(block.tree) if isinstance(n, ast.Name)} | {
        n.value.id for n in ast.walk(block.tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}


_IMPORT_LINE = re.compile(r"(?:import|from)[ \t]+[\w.]+")


def entry_name(entry_point: str | None) -> str | None:
    """The top-level name an entry point needs: LeetCode's ``Solution().twoSum``
    -> ``Solution``.

    >>> entry_name("Solution().twoSum"), entry_name("f"), entry_name(None)
    ('Solution', 'f', None)
    """
    return entry_point.split("(")[0].split(".")[0] if entry_point else entry_point


def prompt_header(head: str, entry_point: str | None) -> tuple[str, str]:
    """(imports, helpers) of a prompt's code: its top-level import statements
    (HumanEval's ``from typing import List``), and those plus every function or
    class it defines in full other than the entry point (HumanEval's
    ``encode_cyclic``, ``poly``), to be defined on the tester's side.

    >>> prompt_header("import math\\ndef poly(x):\\n    return x\\ndef f(x):\\n    '''Doc.'''\\n", "f")
    ('import math', 'import math\\ndef poly(x):\\n    return x')
    """
    block = Block("python", head)
    if block.tree is None or len(head) > _MAX_PARSE:  # a stub to complete (LeetCode's ends mid-def)
        return "\n".join(line for line in head.split("\n")[:200]
                         if _IMPORT_LINE.match(line) and _parse(line) is not None), ""
    lines = head.split("\n")
    src = lambda n: "\n".join(lines[n.lineno - 1:n.end_lineno])  # noqa: E731
    imports, helpers = [], []
    for node in block.tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(src(node))
            helpers.append(src(node))
        elif isinstance(node, _DEFS) and node.name != entry_name(entry_point) and _has_body(node):
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            helpers.append("\n".join(lines[start - 1:node.end_lineno]))
    return "\n".join(imports), ("\n".join(helpers) if len(helpers) > len(imports) else "")


def _has_body(node) -> bool:
    """More than a docstring (and ``pass`` / ``...``): a definition, not a stub to fill."""
    body = [n for n in node.body if not (isinstance(n, ast.Pass) or (
        isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)))]
    return bool(body)
