"""The ``python`` env (tool-integrated reasoning, ToRL / SimpleTIR style): the model writes
a fenced ```python block, it runs in ``sandbox`` (time and memory limits, no network, no
host files), and its output comes back as an ```output block, after which the model goes on.

Each call is a fresh interpreter. With ``persistent: true`` the episode's earlier blocks
that ran cleanly are run again first, their output discarded, so names carry over as in
a notebook (at the price of their run time, within the same ``timeout_s``); by default
nothing carries over and a block restates what it needs.

The observation holds stdout, then the last ``err_lines`` lines of stderr when the code
failed, cut to ``max_output_chars`` (the cut said in the text); a timeout, memory or
output-limit run, or a kill, is an ``error: ...`` observation, never an exception: the
episode and the run go on.
"""
from __future__ import annotations

import re

from .base import Env, escape_specials

_OPEN = re.compile(r"```(?:python|py)[ \t]*\n")
_CLOSE = re.compile(r"\n?```\s*$")


def code_block(action: str) -> str | None:
    r"""The code of the python block that ends ``action`` (the last one opened), or None.

    >>> code_block("x ```python\nprint(1)\n```\n"), code_block("```python\na\n``` b ```py\nb\n```")
    ('print(1)', 'b')
    >>> code_block("```python\nprint(1)"), code_block("no code")
    (None, None)
    """
    opens = list(_OPEN.finditer(action))
    if not opens:
        return None
    body = action[opens[-1].end():]
    close = _CLOSE.search(body)
    return body[:close.start()] if close else None


def clip(text: str, max_chars: int) -> str:
    """``text`` cut to about ``max_chars`` characters, head and tail kept, the cut said.

    >>> clip("abcdefghij", 6)
    'abc\\n...[4 characters cut]...\\nhij'
    >>> clip("abc", 6)
    'abc'
    """
    if len(text) <= max_chars:
        return text
    head, tail = max_chars // 2, max_chars - max_chars // 2
    return f"{text[:head]}\n...[{len(text) - head - tail} characters cut]...\n{text[len(text) - tail:]}"


def _stderr_tail(stderr: str, n: int, offset: int = 0) -> str:
    """The last ``n`` distinct lines of the sandbox's stderr; ``offset``: lines of prelude
    (persistent history) to take off the code's line numbers."""
    lines = [ln.removeprefix("[sandbox] ") for ln in stderr.splitlines() if ln.strip()]
    if offset:
        lines = [re.sub(r"^(<solution> failed: line )(\d+)", lambda m: f"{m.group(1)}{int(m.group(2)) - offset}", ln)
                 for ln in lines]
    lines = [ln for i, ln in enumerate(lines) if i == 0 or ln != lines[i - 1]]   # a fork bomb's 60 alike
    return "\n".join(lines[-n:])


class PythonTool(Env):
    r"""kwargs: ``timeout_s`` / ``memory_mb`` (per call), ``max_output_chars``,
    ``err_lines``, ``stop`` (what ends a turn; default: a closing fence on its own line),
    ``template`` (the observation around ``{output}``: a chat model's tool turn, e.g.
    ``"<|im_end|>\n<|im_start|>user\n<output>{output}</output><|im_end|>\n<|im_start|>assistant\n"``)."""

    def __init__(self, timeout_s: float = 5.0, memory_mb: int = 512, max_output_chars: int = 1000,
                 err_lines: int = 4, stop: list[str] | None = None,
                 template: str = "```output\n{output}\n```\n", persistent: bool = False):
        super().__init__()
        if not 0 < float(timeout_s) <= 120 or not 16 <= int(memory_mb) <= 16384:
            raise ValueError("python: timeout_s must be in (0, 120] and memory_mb in [16, 16384]")
        self.timeout_s, self.memory_mb = float(timeout_s), int(memory_mb)
        self.max_output_chars, self.err_lines = int(max_output_chars), int(err_lines)
        self.stop = list(stop) if stop is not None else ["\n```\n"]
        if "{output}" not in template:
            raise ValueError("python: template must contain {output}")
        self.template = template
        self.persistent, self.history = bool(persistent), []

    def step(self, action: str) -> tuple[str | None, float, bool]:
        code = code_block(action)
        if code is None:                 # no code block ends the turn: the model has answered
            return None, 0.0, True
        self.calls += 1
        return self.observation(self.run(code)), 0.0, False

    def run(self, code: str) -> str:
        """The text of one call's output (stdout, and the error when there was one)."""
        import sandbox
        try:
            r = sandbox.run(self._with_history(code), [], timeout_s=self.timeout_s, memory_mb=self.memory_mb)
        except Exception as e:           # the sandbox itself failed: an observation, counted
            self.errors += 1
            return f"error: sandbox failed: {type(e).__name__}: {str(e)[:200]}"
        if r.status == "ok":
            if self.persistent:
                self.history.append(code)
            return r.stdout
        self.errors += 1
        why = {"timeout": f"timed out after {self.timeout_s:g} s", "memory": "out of memory",
               "output_limit": "output too large", "killed": "killed", "error": "the code raised"}
        err = _stderr_tail(r.stderr, self.err_lines, 1 if self.persistent and self.history else 0)
        out = clip(r.stdout, self.max_output_chars // 2)
        return f"{out}{'' if not out or out.endswith(chr(10)) else chr(10)}error: {why.get(r.status, r.status)}" + \
            (f"\n{err}" if err else "")

    def _with_history(self, code: str) -> str:
        """``code`` after one line that runs the earlier clean blocks silently (persistent)."""
        if not (self.persistent and self.history):
            return code
        prelude = ("import sys as _s, io as _io\n_o = _s.stdout\n_s.stdout = _io.StringIO()\ntry:\n"
                   "    exec(compile(_h, '<previous blocks>', 'exec'), _g)\nfinally:\n    _s.stdout = _o\n")
        return f"_g = globals(); exec({prelude!r}, {{'_h': {chr(10).join(self.history)!r}, '_g': _g}}); del _g\n{code}"

    def observation(self, out: str) -> str:
        out = escape_specials(clip(out.rstrip(), self.max_output_chars), self.special_tokens)
        return self.template.replace("{output}", out)
