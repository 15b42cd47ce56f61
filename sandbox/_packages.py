"""Packages a recipe allows on purpose (``allow_packages=["numpy"]``).

By default only the standard library is importable in the sandbox (the
host's package dirs are covered, see backends.package_dirs).  An allowed
package is made visible read-only, by itself: its import dir (or module file)
and its ``<name>.libs`` dir of bundled shared libraries, nothing else of the
site dir it lives in.  Dependencies are not followed: allow them by name too.

>>> resolve(["json"])
Traceback (most recent call last):
ValueError: allow_packages: 'json' is part of the standard library (always allowed)
"""

from __future__ import annotations

import importlib.util
import os
import sys

IN_BWRAP = "/opt/grpo-packages"  # where bwrap binds them in its new root
IN_UNSHARE = "/tmp/.packages"  # root-owned dir in the run's private /tmp


def resolve(names) -> list[tuple[str, str]]:
    """(host path, entry name) of each allowed package; ValueError if unknown."""
    out = []
    for name in names or ():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"allow_packages: {name!r} is not a top-level module name")
        if name in sys.stdlib_module_names:
            raise ValueError(f"allow_packages: {name!r} is part of the standard library "
                             "(always allowed)")
        spec = importlib.util.find_spec(name)
        if spec is None or (spec.origin in (None, "built-in", "frozen")
                            and not spec.submodule_search_locations):
            raise ValueError(f"allow_packages: {name!r} is not installed for {sys.executable}")
        if spec.submodule_search_locations:
            path = os.path.realpath(list(spec.submodule_search_locations)[0])
        else:
            path = os.path.realpath(spec.origin)
        out.append((path, os.path.basename(path)))
        libs = os.path.join(os.path.dirname(path), name + ".libs")
        if os.path.isdir(libs):
            out.append((os.path.realpath(libs), name + ".libs"))
    return out


def bwrap_args(allowed: list[tuple[str, str]]) -> list[str]:
    if not allowed:
        return []
    args = ["--perms", "0755", "--dir", os.path.dirname(IN_BWRAP), "--perms", "0755",
            "--dir", IN_BWRAP]
    for src, entry in allowed:
        args += ["--ro-bind", src, os.path.join(IN_BWRAP, entry)]
    return args


def harness_binds(allowed: list[tuple[str, str]]) -> list[tuple[str, str, str, bool]]:
    """Mount entries for the unshare backend (made after the run's /tmp tmpfs)."""
    return [("bind", os.path.join(IN_UNSHARE, entry), src, True) for src, entry in allowed]


def sys_path(backend: str, allowed: list[tuple[str, str]]) -> list[str]:
    if not allowed:
        return []
    if backend == "bwrap":
        return [IN_BWRAP]
    if backend == "unshare":
        return [IN_UNSHARE]
    return sorted({os.path.dirname(src) for src, _ in allowed})
