"""Multi-stage runs: DeepSeek-R1's four stages (and R1-Distill) as one resumable command.

A pipeline recipe lists stages, each an ``sft``, ``rl`` (GRPO, ``grpo.train.trainer``) or
``sample`` (rejection sampling) recipe, plus the initial model and a held-out eval:

    name: tiny_r1
    model: data/tiny_model
    eval: {data: {source: builtin:arithmetic, num_samples: 200, seed: 10000}, k: 4}
    stages:
      - {name: cold_start, type: sft, recipe: r1/1_cold_start.yaml}      # R1 2.3.1
      - {name: reasoning_rl, type: rl, recipe: r1/2_reasoning_rl.yaml}   # R1 2.3.2
      - {name: rejection_sampling, type: sample, recipe: r1/3_sample.yaml}  # R1 2.3.3
      - {name: rs_sft, type: sft, recipe: r1/3_sft.yaml, data: auto}
      - {name: all_scenario_rl, type: rl, recipe: r1/4_rl.yaml, prompts: [...]}  # R1 2.3.4

Wiring is automatic: a stage's model is the output of the last model-producing stage
(sft, rl) before it, or the pipeline's ``model``; ``model: <path>``, ``model: @<stage>`` or
``model: @base`` (the initial model) overrides that (a distillation's teacher, R1's stage-3
SFT that restarts from the base model). ``data: auto`` feeds an sft stage the last
sample stage's dataset. ``prompts`` builds an rl stage's prompt set from several sources,
each tagged with a ``kind`` (reasoning | general) so that each reward knows its samples.

Everything lives in ``<output_dir>/<name>/``: one directory per stage, the
``pipeline_state.json`` that records each finished stage (its config hash, outputs and
eval), ``summary.json``, and ``final_model`` (a link to the last model). Re-running skips
finished stages and resumes an interrupted rl stage from its last checkpoint; a finished
stage whose config changed is an error unless ``--from <stage>`` re-runs it and the rest.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field

from ..train import reward_model
from ..config import ConfigError, SourceConfig, _Strict
from ..recipe import load_recipe, read_recipe
from ..model.policy import _looks_local
from ..data import write_prompts
from .eval import EvalSpec, evaluate_model

MODEL_STAGES = ("sft", "rl")


# --------------------------------------------------------------------------- schema
class StageSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    type: Literal["sft", "rl", "sample"]
    recipe: Optional[str] = Field(None, description="stage recipe, relative to the pipeline file")
    config: Optional[dict[str, Any]] = Field(None, description="inline recipe (over `recipe`)")
    set: list[str] = Field(default_factory=list, description="--set overrides for this stage")
    model: Optional[str] = Field(None, description="input model: path | hub id | @stage | @base "
                                                   "(default: the last stage's model)")
    data: Optional[str] = Field(None, description="sft data: auto | @stage | file (default: the recipe's)")
    prompts: Optional[list[SourceConfig]] = Field(None, description="rl: prompt sources mixed by kind")
    eval: bool = Field(True, description="evaluate this stage's model on the held-out set")


class PipelineConfig(_Strict):
    name: Optional[str] = None
    output_dir: str = "runs"
    model: str = Field(description="the initial model (the base, or a distillation's student)")
    eval: Optional[EvalSpec] = Field(default_factory=EvalSpec)
    stages: list[StageSpec] = Field(min_length=1)

    def run_dir(self) -> Path:
        return Path(self.output_dir) / (self.name or "pipeline")


def load_pipeline(path: str | Path, overrides: list[str] | None = None) -> tuple[PipelineConfig, Path]:
    """The pipeline recipe; ``--set <stage>.<key>=v`` goes to that stage, others to the pipeline."""
    p = Path(path)
    tree = read_recipe(p)
    stages = {s.get("name"): s for s in tree.get("stages") or [] if isinstance(s, dict)}
    pipeline_overrides = []
    for o in overrides or []:
        head, _, rest = o.partition(".")
        if head in stages and rest:
            stages[head].setdefault("set", []).append(rest)
        else:
            pipeline_overrides.append(o)
    cfg = load_recipe(PipelineConfig, None, pipeline_overrides, tree)
    if cfg.name is None:
        cfg.name = p.stem
    names = [s.name for s in cfg.stages]
    if "base" in names:
        raise ConfigError("'base' is reserved for the initial model (model: '@base'); rename the stage")
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"stage names must be unique; repeated: {sorted(dup)}")
    return cfg, p.parent


# --------------------------------------------------------------------------- planning
@dataclass
class Stage:
    """A stage with its recipe resolved and its inputs and outputs wired."""
    spec: StageSpec
    cfg: Any
    inputs: dict[str, str]
    outputs: dict[str, str]
    config_hash: str = ""
    rerun: bool = False      # --from: start this stage over (its old run is replaced)


def _check_model(path: str, where: str) -> None:
    if _looks_local(path) and not Path(path).expanduser().exists():
        raise ConfigError(f"{where}: model {path!r} not found (if another pipeline makes it, run that first)")


def plan(cfg: PipelineConfig, base_dir: Path) -> list[Stage]:
    """Resolve every stage's recipe and wiring up front, so a typo in stage 4 fails now,
    not hours later. Outputs are deterministic paths under the pipeline's run dir."""
    run = cfg.run_dir()
    _check_model(cfg.model, "pipeline")
    current, models, datasets, out = cfg.model, {"base": cfg.model}, {}, []
    for spec in cfg.stages:
        where = f"stage {spec.name!r}"
        model = _ref(spec.model, models, where, "model") if spec.model else current
        if spec.model and not spec.model.startswith("@"):
            _check_model(model, where)
        inputs = {"model": model}
        wiring = [f"model.path={model}", f"output.dir={run}", f"output.name={spec.name}"]
        if spec.data is not None:
            if spec.type != "sft":
                raise ConfigError(f"{where}: 'data' wiring is for sft stages (use 'prompts' for rl)")
            ref = "@" + next(reversed(datasets), "") if spec.data == "auto" else spec.data
            if spec.data == "auto" and not datasets:
                raise ConfigError(f"{where}: data: auto needs a sample stage before it")
            inputs["data"] = _ref(ref, datasets, where, "dataset")
            wiring.append(f"data.source={inputs['data']}")
        if spec.prompts is not None:
            if spec.type != "rl":
                raise ConfigError(f"{where}: 'prompts' is for rl stages")
            inputs["prompts"] = str(run / spec.name / "prompts.jsonl")
            wiring += [f"data.source={inputs['prompts']}", "data.num_samples=null"]
        stage_cfg = _load_stage(spec, base_dir, wiring, where)
        outputs = _outputs(spec, stage_cfg, run)
        st = Stage(spec, stage_cfg, inputs, outputs)
        st.config_hash = _hash(spec, stage_cfg)
        out.append(st)
        if "model" in outputs:
            models[spec.name] = current = outputs["model"]
        if "data" in outputs:
            datasets[spec.name] = outputs["data"]
    return out


def _ref(value: str, produced: dict, where: str, what: str) -> str:
    if not value.startswith("@"):
        return value
    name = value[1:]
    if name not in produced:
        raise ConfigError(f"{where}: {value!r} names no earlier stage that produces a {what} "
                          f"(earlier: {sorted(produced) or 'none'})")
    return produced[name]


def _load_stage(spec: StageSpec, base_dir: Path, wiring: list[str], where: str):
    from ..config import Config
    from .sample import SampleConfig
    from .sft import SFTConfig
    schema = {"sft": SFTConfig, "rl": Config, "sample": SampleConfig}[spec.type]
    if spec.recipe is None and spec.config is None:
        raise ConfigError(f"{where}: give a 'recipe' file or an inline 'config'")
    path = base_dir / spec.recipe if spec.recipe else None
    try:
        return load_recipe(schema, path, list(spec.set) + wiring, spec.config)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def _outputs(spec: StageSpec, cfg, run: Path) -> dict[str, str]:
    d = run / spec.name
    if spec.type == "sft":
        return {"model": str(d / "model")}
    if spec.type == "sample":
        return {"data": str(d / "data.jsonl"), "stats": str(d / "stats.json")}
    if cfg.model.lora:                                # adapters merged into a full model
        return {"model": str(d / "model")}
    return {"model": str(d / "checkpoints" / f"step-{cfg.train.steps}")}


def _hash(spec: StageSpec, cfg) -> str:
    blob = json.dumps({"type": spec.type, "cfg": cfg.model_dump(mode="json"),
                       "prompts": [p.model_dump(mode="json") for p in spec.prompts or []]},
                      sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- runners
def run_sft(st: Stage) -> dict:
    from .sft import sft
    res = sft(st.cfg)
    return {"loss_before": res["loss_before"], "loss_after": res["loss_after"], "steps": res["steps"]}


def run_rl(st: Stage) -> dict:
    from ..run import checkpoint
    from ..train.trainer import train
    extra = {}
    if st.spec.prompts is not None:
        extra["prompt_kinds"] = write_prompts(st.spec.prompts, Path(st.inputs["prompts"]))
    # Resumes inside the stage too; --from replaces the stage's old run instead.
    run_dir = train(st.cfg, resume=False if st.rerun else "auto", overwrite=st.rerun)
    ckpt = checkpoint.latest(run_dir / "checkpoints")
    if st.cfg.model.lora:
        from ..model.policy import load_policy
        from .sft import save_model
        m = st.cfg.model
        tok, model = load_policy(m.path, m.dtype, m.lora, trainable=False, adapter=str(ckpt))
        save_model(model, tok, Path(st.outputs["model"]))
    return extra


def run_sample(st: Stage) -> dict:
    from .sample import sample
    stats = sample(st.cfg, log=lambda *a: None)       # printed by the pipeline, from its state
    return {"sample_stats": {k: v for k, v in stats.items() if k != "data"}}


RUNNERS = {"sft": run_sft, "rl": run_rl, "sample": run_sample}


# --------------------------------------------------------------------------- state
class State:
    """``pipeline_state.json``: finished stages, their outputs and evals; written atomically."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {"stages": {}}

    def done(self, name: str) -> dict | None:
        return self.data["stages"].get(name)

    def record(self, name: str, entry: dict) -> None:
        self.data["stages"][name] = entry
        self.save()

    def forget_from(self, names: list[str], start: str) -> None:
        for n in names[names.index(start):]:
            self.data["stages"].pop(n, None)
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(".tmp-" + self.path.name)
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        os.replace(tmp, self.path)


# --------------------------------------------------------------------------- the run
def run_pipeline(cfg: PipelineConfig, base_dir: Path, from_stage: str | None = None,
                 evaluator=evaluate_model, log=print) -> dict:
    stages = plan(cfg, base_dir)
    names = [s.spec.name for s in stages]
    run = cfg.run_dir()
    state = State(run / "pipeline_state.json")
    if from_stage is not None:
        if from_stage not in names:
            raise ConfigError(f"--from {from_stage!r}: no such stage; stages are {names}")
        state.forget_from(names, from_stage)
        for st in stages[names.index(from_stage):]:
            st.rerun = True
    ev = cfg.eval
    if ev is not None and ev.baseline:
        base = state.data.get("base") or {}
        if base.get("model") != cfg.model:
            base = {"model": cfg.model}
        if _evaluate_entry(base, cfg.model, ev, evaluator, log):
            state.data["base"] = base
            state.save()
        log(_eval_line("base", "model", base["eval"]))
    for i, st in enumerate(stages, 1):
        _run_stage(st, i, len(stages), state, ev, evaluator, log)
    final = next((s.outputs["model"] for s in reversed(stages) if "model" in s.outputs), None)
    if final is not None:
        _link(run / "final_model", Path(final))
    summary = _summary(cfg, stages, state)
    (run / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    log(format_summary(summary))
    return summary


def _run_stage(st: Stage, i: int, n: int, state: State, ev, evaluator, log) -> None:
    name, kind = st.spec.name, st.spec.type
    prev = state.done(name)
    if prev is not None:
        if prev.get("config_hash") != st.config_hash:
            raise ConfigError(f"stage {name!r} already finished with a different config; "
                              f"re-run it and the later stages with --from {name}")
        log(f"[pipeline] stage {i}/{n} {name} ({kind}): finished earlier, skipped")
        if st.spec.eval and "model" in st.outputs and _evaluate_entry(prev, st.outputs["model"], ev,
                                                                      evaluator, log):
            state.record(name, prev)                  # the eval settings changed: re-evaluated
    else:
        log(f"[pipeline] stage {i}/{n} {name} ({kind}): model {st.inputs['model']}"
            + (f", data {st.inputs['data']}" if "data" in st.inputs else ""))
        t0 = time.time()
        extra = RUNNERS[kind](st) or {}
        entry = {"type": kind, "config_hash": st.config_hash, "inputs": st.inputs,
                 "outputs": st.outputs, "time_s": round(time.time() - t0, 1), **extra}
        if st.spec.eval and "model" in st.outputs:
            _evaluate_entry(entry, st.outputs["model"], ev, evaluator, log)
        state.record(name, entry)
        prev = entry
    if "eval" in prev:
        log(_eval_line(name, kind, prev["eval"]))
    if "sample_stats" in prev:
        from .sample import format_stats
        log(format_stats(prev["sample_stats"]))


def _evaluate_entry(entry: dict, model: str, ev: EvalSpec | None, evaluator, log) -> bool:
    """Evaluate ``model`` into ``entry`` unless it holds an eval with the same settings."""
    if ev is None:
        return False
    key = hashlib.sha1(ev.model_dump_json().encode()).hexdigest()[:12]
    if "eval" in entry and entry.get("eval_key") == key:
        return False
    log(f"[pipeline] evaluating {model} on the held-out set")
    entry["eval"], entry["eval_key"] = evaluator(model, ev), key
    return True


def _eval_line(name: str, kind: str, e: dict) -> str:
    fmt = "n/a" if e.get("format_rate") is None else f"{e['format_rate']:.3f}"
    line = (f"[pipeline] {name:<20} ({kind}) held-out accuracy (pass@1) {e['pass@1']:.3f} | "
            f"format {fmt} | n={e['n_prompts']} x k={e['k']}")
    if e.get("general_reward") is not None:
        line += f" | general reward {e['general_reward']:.3f}"
    return line


def _link(link: Path, target: Path) -> None:
    tmp = link.with_name(".tmp-" + link.name)
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.relpath(target, link.parent), tmp)
    os.replace(tmp, link)


def _summary(cfg: PipelineConfig, stages: list[Stage], state: State) -> dict:
    rows = []
    if "base" in state.data:
        rows.append({"name": "base", "type": "model", "outputs": {"model": cfg.model},
                     "eval": state.data["base"]["eval"]})
    for st in stages:
        e = state.done(st.spec.name) or {}
        rows.append({"name": st.spec.name, "type": st.spec.type, "outputs": st.outputs,
                     **{k: e[k] for k in ("eval", "sample_stats", "loss_before", "loss_after",
                                          "prompt_kinds", "time_s") if k in e}})
    return {"pipeline": cfg.name, "run_dir": str(cfg.run_dir()),
            "eval_settings": cfg.eval.model_dump(mode="json") if cfg.eval else None, "stages": rows}


def format_summary(s: dict) -> str:
    lines = [f"[pipeline] {s['pipeline']} done: {s['run_dir']}/summary.json",
             f"  {'stage':<22}{'type':<8}{'pass@1':>8}{'format':>8}{'general':>9}"]
    for r in s["stages"]:
        e = r.get("eval") or {}
        cell = lambda v: f"{v:.3f}" if isinstance(v, (int, float)) else "-"  # noqa: E731
        lines.append(f"  {r['name']:<22}{r['type']:<8}{cell(e.get('pass@1')):>8}"
                     f"{cell(e.get('format_rate')):>8}{cell(e.get('general_reward')):>9}")
    from .sample import format_stats
    for r in s["stages"]:
        if "sample_stats" in r:
            lines.append(f"  [{r['name']}] " + format_stats(r["sample_stats"]))
    return "\n".join(lines)


def describe(stages: list[Stage]) -> str:
    """The wiring, for ``grpo pipeline --dry-run``."""
    lines = []
    for i, st in enumerate(stages, 1):
        ins = ", ".join(f"{k}={v}" for k, v in st.inputs.items())
        outs = ", ".join(f"{k}={v}" for k, v in st.outputs.items())
        lines.append(f"{i}. {st.spec.name} ({st.spec.type})  in: {ins}  out: {outs}")
    return "\n".join(lines)
