"""Reading recipes: YAML files and ``--set`` overrides, validated against any pydantic schema,
every mistake one line (unknown keys with a did-you-mean, bad values with the key, YAML
errors with line and column). The schemas live in config.py; ``grpo sft``, ``grpo sample``
and ``grpo pipeline`` load their own through ``load_recipe``.

>>> tree = {"train": {"steps": 1}}
>>> apply_override(tree, "rewards=[]"); tree
{'train': {'steps': 1}, 'rewards': []}
>>> apply_override(tree, "train.lr")
Traceback (most recent call last):
...
grpo.recipe.ConfigError: --set expects key=value, got 'train.lr'
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """Invalid recipe; the message is one line meant for the user."""


def _check_keys(model: type[BaseModel], data: Any, prefix: str = "") -> None:
    """Reject unknown keys before pydantic does, with a did-you-mean suggestion."""
    if not isinstance(data, dict):
        return
    fields = model.model_fields
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in fields:
            near = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean '{prefix}{near[0]}'?" if near else f"; valid keys: {', '.join(fields)}"
            raise ConfigError(f"unknown key '{path}'{hint}")
        sub = _submodel(fields[key].annotation)
        if sub is not None:
            items = value if isinstance(value, list) else [value]
            for item in items:
                _check_keys(sub, item, path + ".")


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        sub = _submodel(arg)
        if sub is not None:
            return sub
    return None


def apply_override(tree: dict, assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: invalid YAML value {raw!r}: {_yaml_error(e)}") from None
    node = tree
    parts = key.strip().split(".")
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {key}: '{part}' is not a section")
        node = nxt
    node[parts[-1]] = value


def read_recipe(path: str | Path) -> dict:
    """A recipe file's YAML mapping, or a one-line ConfigError (missing, invalid, not a mapping)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"recipe {str(p)!r} is a directory, not a YAML file")
    if not p.is_file():
        raise ConfigError(f"recipe not found: {str(p)!r}")
    try:
        text = p.read_bytes().decode("utf-8-sig")     # a byte-order mark is fine
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
                          "save the recipe as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"cannot read recipe {str(p)!r}: {e.strerror}") from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML: {_yaml_error(e)}") from None
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{p}: a recipe must be a mapping of sections, got {type(tree).__name__}")
    return tree


def _yaml_error(e: yaml.YAMLError) -> str:
    """One line with the line and column of a YAML error (1-based, as editors count)."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    what = " ".join(str(x) for x in (getattr(e, "context", None), getattr(e, "problem", None)) if x) \
        or str(e).splitlines()[0]
    if mark is None:
        return what
    ctx = getattr(e, "context_mark", None)
    where = f" (opened at line {ctx.line + 1}, column {ctx.column + 1})" if ctx is not None and ctx is not mark \
        and (ctx.line, ctx.column) != (mark.line, mark.column) else ""
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}{where}"


def require_model_and_data(tree: dict, path, model: bool = True) -> None:
    """A recipe file must say what to train and on what: defaults for either are a mistake."""
    need = (("model", ("path",), "model.path"),) * model + (("data", ("source", "preset"), "data.source or data.preset"),)
    missing = [k for sec, keys, k in need
               if not isinstance(tree.get(sec), dict) or not any(tree[sec].get(key) for key in keys)]
    if missing:
        raise ConfigError(f"{path}: a recipe must name a model and data; missing {' and '.join(missing)}")


def validate_tree(schema: type[BaseModel], tree: dict, overrides: list[str] | None = None):
    """Apply ``--set`` overrides to a recipe tree and validate it against ``schema``, turning
    unknown keys and bad values into one-line ConfigErrors."""
    for assignment in overrides or []:
        apply_override(tree, assignment)
    _check_keys(schema, tree)
    try:
        return schema.model_validate(tree)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        if not loc:                     # a check across sections: its message names the keys
            raise ConfigError(f"invalid recipe: {err['msg'].removeprefix('Value error, ')}") from None
        raise ConfigError(f"invalid value for '{loc}': {err['msg']} (got {err.get('input')!r})") from None


def load_recipe(schema: type[BaseModel], path: str | Path | None, overrides: list[str] | None = None,
                tree: dict | None = None):
    """Any stage recipe: YAML file (or ``tree``) + ``--set`` overrides, strictly validated."""
    tree = dict(tree or {})
    if path is not None:
        loaded = read_recipe(path)
        tree = deep_merge(loaded, tree)
    cfg = validate_tree(schema, tree, overrides)
    out = getattr(cfg, "output", None)
    if out is not None and getattr(out, "name", "") is None:
        out.name = Path(path).stem if path else schema.__name__.lower().replace("config", "")
    return cfg


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
