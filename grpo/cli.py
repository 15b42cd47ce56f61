"""``grpo`` command line: train | sft | sample | eval | pipeline | report.

User errors (a missing recipe, an unknown key, a reward that does not exist, a dataset
without the columns a reward needs, a model path that does not exist, a run directory in
use or holding another run, a full disk) print one line and exit with status 2;
``--debug`` shows the traceback instead. README.md ("Runs you can trust") lists what each fault gets.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys

USER_ERRORS = ("grpo.recipe:ConfigError", "grpo.data:DataError", "grpo.model.policy:ModelError",
               "rewards:RewardLoadError", "rewards:RewardError",
               "grpo.run.report:ReportError", "grpo.run.rundir:RunError", "grpo.run.checkpoint:CheckpointError")


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
    from .train.trainer import train
    cfg = load_config(args.recipe, args.overrides)
    run_dir = train(cfg, resume=args.resume, overwrite=args.overwrite)
    print(f"run finished: {run_dir}")
    return 0


def _run(args) -> int:
    """The command, then the process group (train, pipeline) shut down; after a command that
    failed the process exits as it is (a peer may be stuck in a collective)."""
    rc = args.fn(args)
    _leave_process_group()
    return rc


def _leave_process_group() -> None:
    """Shut grpo's process group down before exit: left to interpreter teardown, gloo can abort
    the process ("terminate called without an active exception") once a peer has exited. A
    group vLLM started (colocated engine, one process) is vLLM's to destroy at its shutdown."""
    import torch.distributed as dist

    from .dist.parallel import OWNS_PROCESS_GROUP
    if OWNS_PROCESS_GROUP and dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 -- best effort at exit; the run's outcome stands
            pass


def cmd_eval(args) -> int:
    import json

    from .config import ConfigError, load_config
    from .stages.eval import eval_config
    if args.k < 1:
        raise ConfigError(f"--k {args.k}: need at least 1 sample per prompt")
    if args.n is not None and args.n < 1:
        raise ConfigError(f"--n {args.n}: need at least 1 held-out prompt (omit --n for all of them)")
    cfg = load_config(args.recipe, args.overrides, require_model=args.model is None)
    res = eval_config(cfg, model=args.model, k=args.k, n=args.n, on_train_rows=args.on_train_rows, seed=args.seed,
                      engine=args.engine)
    res.pop("samples")
    print(json.dumps(res, indent=1))
    return 0


def cmd_sft(args) -> int:
    from .stages.sft import load_sft_config, sft
    res = sft(load_sft_config(args.recipe, args.overrides))
    print(f"sft finished: {res['model']} (loss {res['loss_before']:.4f} -> {res['loss_after']:.4f})")
    return 0


def cmd_sample(args) -> int:
    from .stages.sample import load_sample_config, sample
    res = sample(load_sample_config(args.recipe, args.overrides))
    print(f"dataset written: {res['data']} ({res['dataset_rows']} rows; stats in stats.json)")
    return 0


def cmd_pipeline(args) -> int:
    from .stages.pipeline import describe, load_pipeline, plan, run_pipeline
    cfg, base_dir = load_pipeline(args.recipe, args.overrides)
    if args.dry_run:
        print(describe(plan(cfg, base_dir)))
        return 0
    run_pipeline(cfg, base_dir, from_stage=args.from_stage)
    return 0


def cmd_report(args) -> int:
    from .run.report import report
    out = report(args.run_dir)
    print(f"report written: {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="grpo", description="GRPO post-training for language models")
    ap.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = ap.add_subparsers(dest="command", required=True)
    p = _recipe_parser(sub, "train", "GRPO training (R1-Zero style)")
    p.add_argument("--resume", action="store_true", help="continue from the run's last intact checkpoint "
                   "(the recipe must match the run's config.yaml but for train.steps and a few others)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the output directory")
    p.set_defaults(fn=cmd_train)
    p = _recipe_parser(sub, "eval", "pass@1 (mean of k samples), maj@k, pass@k on the held-out set")
    p.add_argument("--model", help="model or checkpoint directory (default: the recipe's model)")
    p.add_argument("--k", type=int, default=4, help="samples per prompt")
    p.add_argument("--engine", choices=["hf", "vllm"], default=None,
                   help="what samples (default: the recipe's rollout.engine; a server recipe: hf)")
    p.add_argument("--n", type=int, default=None, help="number of held-out prompts")
    p.add_argument("--seed", type=int, default=0, help="sampling seed: the same seed, model and rows give the "
                   "same numbers (without one, two evals of one model differed by 0.02-0.04 pass@1)")
    p.add_argument("--on-train-rows", action="store_true",
                   help="evaluate on the training rows (a local file without a held-out split)")
    p.set_defaults(fn=cmd_eval)
    p = _recipe_parser(sub, "sft", "supervised fine-tuning (cold start, rejection-sampling SFT, distillation)")
    p.set_defaults(fn=cmd_sft)
    p = _recipe_parser(sub, "sample", "rejection sampling to an SFT dataset, with filter statistics")
    p.set_defaults(fn=cmd_sample)
    p = _recipe_parser(sub, "pipeline", "multi-stage run (R1, distillation); skips finished stages")
    p.add_argument("--from", dest="from_stage", metavar="STAGE", help="re-run from this stage on")
    p.add_argument("--dry-run", action="store_true", help="print the stages and their wiring")
    p.set_defaults(fn=cmd_pipeline)
    sub.add_parser("vllm-serve", help="serve a model for rollouts over HTTP (grpo vllm-serve --help)")
    p = sub.add_parser("report", help="plots and a summary of a run directory")
    p.add_argument("run_dir")
    p.set_defaults(fn=cmd_report)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["vllm-serve"]:                 # its own argument parser
        from .rollout.server import main as serve_main
        return serve_main(argv[1:])
    debug = "--debug" in argv                      # accepted anywhere on the line
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    if debug or args.debug:
        return _run(args)
    # The hub client logs every retry of an unreachable host; the one-line error says it all.
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    try:
        return _run(args)
    except _user_error_types() as e:
        print(f"grpo: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"grpo: error: no space left on device{f' writing {e.filename}' if e.filename else ''}; "
              "free some space, then continue with --resume", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("grpo: interrupted; resume with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
