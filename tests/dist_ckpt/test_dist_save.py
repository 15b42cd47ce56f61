"""Multi-process checkpoint saves (2 gloo processes, spawned): a failure on any one rank,
anywhere in the save, is one CheckpointError on every rank (no hang), leaves no partial
directory and the previous checkpoint intact and resumable; an FSDP2-sharded model saves
its shards, exports full HF weights, and resumes exactly."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _dist_ckpt_worker import spawn  # noqa: E402


def test_failure_on_one_rank_during_save_leaves_the_previous_checkpoint(tmp_path):
    """Injected on rank 1 after its DCP shard, on rank 0 in the HF export, on rank 1 inside
    DCP's collective write, and a full disk on rank 1 (_dist_ckpt_worker.WHERE)."""
    spawn("crash_during_save", 2, str(tmp_path / "ck"))


def test_fsdp2_sharded_save_export_and_exact_resume(tmp_path):
    spawn("fsdp_roundtrip", 2, str(tmp_path / "ck"))
