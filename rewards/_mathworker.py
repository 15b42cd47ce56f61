"""Symbolic-comparison worker process (run as a script by :mod:`rewards._pool`).

Protocol on stdin/stdout, one JSON line each way: request ``[pred, gold,
soft_timeout_s]`` (two extracted answers), reply ``1`` / ``0`` / ``E <message>``; ``ready`` is printed
once the imports are done.  The parent kills this process when a reply is late
-- that is the hard timeout, and it works whatever the worker is stuck in (a
C-level big-integer power ignores Python signals).  Two more guards bound the
damage of an orphaned or runaway worker: RLIMIT_CPU (the kernel kills the
process if a request burns more CPU than allowed) and RLIMIT_AS (``10**10**10``
fails with MemoryError instead of eating the machine).

This file imports nothing from the ``rewards`` package on purpose: it must start
in a bare interpreter quickly, whatever the parent had on ``sys.path``.
"""

import json
import logging
import os
import re
import sys


def _limit(resource, kind, soft):
    try:
        _, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(kind, (soft, hard))
    except (ValueError, OSError):
        pass


def main():
    try:
        import resource
    except ImportError:  # not POSIX
        resource = None
    mem_mb = int(os.environ.get("GRPO_MATH_WORKER_MEM_MB", "4096"))
    if resource is not None and mem_mb > 0:
        _limit(resource, resource.RLIMIT_AS, mem_mb * 1024 * 1024)

    logging.disable(logging.WARNING)  # math-verify logs every timeout/parse failure
    out = sys.stdout
    try:
        from math_verify import LatexExtractionConfig, parse, verify
    except BaseException as e:  # noqa: BLE001 -- tell the parent why instead of dying silently
        out.write(" ".join(f"E {type(e).__name__}: {e}".split()) + "\n")
        out.flush()
        return
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        try:
            pred, gold, soft = json.loads(line)
            soft = max(1, int(soft))
            if resource is not None:
                # CPU budget for this request: used so far + a margin over the
                # parent's timeout; SIGXCPU's default action terminates us.
                ru = resource.getrusage(resource.RUSAGE_SELF)
                _limit(resource, resource.RLIMIT_CPU, int(ru.ru_utime + ru.ru_stime) + 3 * soft + 5)
            cfg = (LatexExtractionConfig(),)
            g = _parse(parse, gold, cfg, soft)
            p = _parse(parse, pred, cfg, soft)
            ok = bool(g) and bool(p) and verify(g, p, timeout_seconds=soft)
            reply = "1" if ok else "0"
        except BaseException as e:  # noqa: BLE001 -- report, never die on a bad answer
            if isinstance(e, KeyboardInterrupt):
                raise
            reply = "E " + " ".join(f"{type(e).__name__}: {e}".split())[:300]
        out.write(reply + "\n")
        out.flush()


_CACHE: dict = {}  # parsed values by text: a gold is shared by a group's G completions


def _parse(parse, s, cfg, soft):
    hit = _CACHE.get(s)
    if hit is None:
        if len(_CACHE) >= 4096:
            _CACHE.clear()
        hit = _CACHE[s] = _parse_uncached(parse, s, cfg, soft)
    return hit


def _parse_uncached(parse, s, cfg, soft):
    """Sympy values of one extracted answer.  It must parse as LaTeX as a whole:
    no fallback that would read the first number of ``5 + \\dots`` or ``5 is
    wrong``.  The extracted-string element math-verify adds is dropped: it is
    not a value."""
    s = s.replace("\\mathrm{e}", "e").replace("\\text{e}", "e")
    vals = parse(_wrap(s), cfg, fallback_mode="no_fallback", parsing_timeout=soft)
    return [v for v in vals if not isinstance(v, str)]


def _wrap(s: str) -> str:
    # The answer is read as one LaTeX formula: its own $ signs go, one pair wraps it.
    s = re.sub(r"(?<!\\)\$", " ", s).strip()
    return s if "\\boxed" in s else f"${s}$"


if __name__ == "__main__":
    main()
