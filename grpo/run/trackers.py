"""Experiment trackers (``output.report_to``): each gets every metrics.jsonl row, under
the same names, at the same step.

Each tracker is an optional extra (``pip install 'grpo[wandb]'``); a named tracker that
is not installed is a one-line error before the run starts, never a silent no-op. Local
by default: TensorBoard writes ``RUN/tensorboard``, MLflow a file store ``RUN/mlruns``
(unless ``MLFLOW_TRACKING_URI`` is set), Trackio its SQLite files under ``RUN/trackio``
(unless ``TRACKIO_DIR`` is set), and W&B follows ``WANDB_MODE`` (``offline`` writes
``RUN/wandb`` only). A resumed run continues the same tracker run (its id is kept in
the run dir).

>>> missing_trackers(["tensorboard"]) == [] or missing_trackers(["tensorboard"])
True
>>> numeric({"a": 1, "b": None, "c": "x", "d": True, "e": 0.5})
{'a': 1.0, 'e': 0.5}
"""
from __future__ import annotations

import importlib.util
import os
import time
import uuid
from pathlib import Path

# tracker -> (module that must import, pip extra)
TRACKERS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"),
            "trackio": ("trackio", "trackio"), "mlflow": ("mlflow", "mlflow")}


def missing_trackers(names) -> list[str]:
    """The one-line errors for ``names`` that are unknown or not installed."""
    out = []
    for n in names:
        if n not in TRACKERS:
            out.append(f"output.report_to: unknown tracker {n!r}; known: {sorted(TRACKERS)}")
        elif importlib.util.find_spec(TRACKERS[n][0]) is None:
            out.append(f"output.report_to: {n} is not installed: pip install 'grpo[{TRACKERS[n][1]}]'")
    return out


def numeric(row: dict) -> dict:
    """The row's numbers as floats (None, strings and booleans are not metrics)."""
    return {k: float(v) for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"}


def _run_id(run_dir: Path, name: str, make=lambda: uuid.uuid4().hex[:16]) -> tuple[str, bool]:
    """A tracker run id kept in the run dir, so --resume continues the same run: the kept
    one, or ``make()``'s, written now; and whether it is new."""
    path = run_dir / f".{name}_run_id"
    if path.exists():
        return path.read_text().strip(), False
    rid = make()
    path.write_text(rid)
    return rid, True


class _TensorBoard:
    def __init__(self, run_dir, project, name, config, resume_step):
        from torch.utils.tensorboard import SummaryWriter
        self.w = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step + 1)

    def log(self, step, metrics):
        for k, v in metrics.items():
            self.w.add_scalar(k, v, step)

    def close(self):
        self.w.close()


class _Run:
    """A tracker whose ``init`` returns a run object with ``log(metrics, step)`` and ``finish()``."""

    def log(self, step, metrics):
        self.run.log(metrics, step=step)

    def close(self):
        self.run.finish()


class _Wandb(_Run):
    def __init__(self, run_dir, project, name, config, resume_step):
        import wandb
        self.run = wandb.init(project=project, name=name, id=_run_id(run_dir, "wandb")[0], resume="allow",
                              dir=str(run_dir), config=config, reinit="create_new")


class _Trackio(_Run):
    def __init__(self, run_dir, project, name, config, resume_step):
        os.environ.setdefault("TRACKIO_DIR", str(run_dir / "trackio"))   # read when trackio is imported
        import trackio
        self.run = trackio.init(project=project, name=name, config=config, resume="allow",
                                embed=False, auto_log_cpu=False, auto_log_gpu=False)


class _Mlflow:
    def __init__(self, run_dir, project, name, config, resume_step):
        from mlflow.tracking import MlflowClient
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:             # a local file store (no database needed; mlflow asks to opt in)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            uri = (run_dir / "mlruns").resolve().as_uri()
        self.c = MlflowClient(tracking_uri=uri)
        exp = self.c.get_experiment_by_name(project)
        exp_id = exp.experiment_id if exp else self.c.create_experiment(project)
        self.rid, new = _run_id(run_dir, "mlflow", lambda: self.c.create_run(exp_id, run_name=name).info.run_id)
        if new:
            for k, v in list(config.items())[:100]:
                self.c.log_param(self.rid, k, str(v)[:500])

    def log(self, step, metrics):
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        self.c.log_batch(self.rid, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def close(self):
        self.c.set_terminated(self.rid)


_OPEN = {"tensorboard": _TensorBoard, "wandb": _Wandb, "trackio": _Trackio, "mlflow": _Mlflow}


def flat(cfg: dict, prefix: str = "") -> dict:
    """A nested config as ``a.b.c`` keys (what trackers show as the run's config).

    >>> flat({"train": {"lr": 1e-5}, "seed": 0})
    {'train.lr': 1e-05, 'seed': 0}
    """
    out = {}
    for k, v in cfg.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class Trackers:
    """The run's trackers; ``log`` sends one metrics row to each."""

    def __init__(self, names, run_dir: Path, project: str, name: str, config: dict, resume_step: int = 0):
        errors = missing_trackers(names)
        if errors:
            raise ValueError(errors[0])
        self.open = [(n, _OPEN[n](Path(run_dir), project, name, flat(config), resume_step)) for n in names]

    def log(self, step: int, row: dict) -> None:
        metrics = numeric(row)
        for _, t in self.open:
            t.log(step, metrics)

    def close(self) -> None:
        for _, t in self.open:
            t.close()


def for_run(out, run_dir: Path, name: str, config: dict, resume_step: int = 0) -> Trackers:
    """The trackers an ``OutputConfig`` asks for: ``report_to``, else TensorBoard when
    ``tensorboard`` is on and installed (what runs did before report_to existed)."""
    names = out.report_to
    if names is None:
        names = ["tensorboard"] if out.tensorboard and not missing_trackers(["tensorboard"]) else []
    return Trackers(names, run_dir, out.project, name, config, resume_step)
