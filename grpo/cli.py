"""``grpo`` command line: train | sft | sample | eval | pipeline | report.

User errors (a missing recipe, an unknown key, a reward that does not exist, a dataset
without the columns a reward needs, a model path that does not exist) print one line
and exit with status 2; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import sys

USER_ERRORS = ("grpo.config:ConfigError", "grpo.data:DataError", "grpo.policy:ModelError",
               "rewards:RewardLoadError", "rewards:RewardError",
               "grpo.report:ReportError")


def _user_error_types() -> tuple[type, ...]:
    types = []
    for spec in USER_ERRORS:
        mod, name = spec.split(":")
        try:
            types.append(getattr(importlib.import_module(mod), name))
        except (ImportError, AttributeError):
            continue
    return tuple(types)


def _recipe_parser(sub, name: str, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help)
    p.add_argument("recipe", help="YAML recipe file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set train.lr=1e-5 (repeatable)")
    return p


def cmd_train(args) -> int:
    from .config import load_config
    from .trainer import train
    cfg = load_config(args.recipe, args.overrides)
    run_dir = train(cfg, resume=args.resume)
    print(f"run finished: {run_dir}")
    return 0


def cmd_report(args) -> int:
    from .report import report
    out = report(args.run_dir)
    print(f"report written: {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="grpo", description="GRPO post-training for language models")
    ap.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = ap.add_subparsers(dest="command", required=True)
    p = _recipe_parser(sub, "train", "GRPO training (R1-Zero style)")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.set_defaults(fn=cmd_train)
    p = sub.add_parser("report", help="plots and a summary of a run directory")
    p.add_argument("run_dir")
    p.set_defaults(fn=cmd_report)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv                      # accepted anywhere on the line
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    if debug or args.debug:
        return args.fn(args)
    try:
        return args.fn(args)
    except _user_error_types() as e:
        print(f"grpo: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("grpo: interrupted; resume with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
