"""The GRPO loop, top to bottom: rollout -> reward -> advantage -> loss -> step -> sync -> log.

GRPO (Shao et al. 2024, DeepSeekMath; DeepSeek-R1 report eq. 1-3): for each prompt sample
G completions, score them with rule-based rewards, use the group-normalised reward as
every token's advantage, and maximise the clipped surrogate, with no value model.
Departures from vanilla GRPO are options, each citing its paper in algos/core.py and algos/losses.py.
"""
from __future__ import annotations

import json
import sys
import time
from collections import deque
from pathlib import Path

import torch
from tqdm.auto import tqdm

import rewards as rewards_lib

from ..algos import core as A
from ..algos import losses as L
from ..run import checkpoint, trackers
from . import optim, reward_model, update
from ..config import Config, ConfigError, dump_config
from ..recipe import validate_tree
from ..data import (PromptSampler, check_prompt_lengths, load_rows, model_context, prompt_format,
                   render_prompt)
from ..run.rundir import open_run_ranks
from ..envs.wiring import env_columns, episode_prompts, wrap_engine
from ..run.metrics import MetricsLogger, accuracy_reward, reflection_counts, safe_mean, tool_stats_metrics, write_samples
from ..dist.metrics import gather_step
from ..dist.parallel import Parallel
from ..model.policy import build_batch, load_policy, score_all, set_threads, to_device
from .reference import Reference, load_reference
from ..rollout import make_engine
from ..rollout.base import SamplingParams
from ..moe.replay import replay_config_error
from ..rollout.overlap import Prefetcher, behaviour_logprobs
from ..rollout.stream import AsyncStream

from .update import UPDATE_KEYS, nothing_to_learn


def _warn(msg: str) -> None:
    tqdm.write(msg, file=sys.stderr)


class Trainer:
    def __init__(self, cfg: Config, resume: bool | str = False, overwrite: bool = False):
        """``resume``: True (continue the run; it must exist), "auto" (continue it if it exists),
        False (a new run: refused if the directory holds one, unless ``overwrite``)."""
        self.cfg = cfg
        self.run_dir = cfg.run_dir()
        self.ckpt_root = self.run_dir / "checkpoints"
        set_threads(cfg.train.threads)
        self.par = Parallel(cfg)
        torch.manual_seed(cfg.train.seed + self.par.rank)   # ranks sample different completions

        # Validate everything cheap before anything expensive: data and rewards, then models.
        d = cfg.data
        self.rewards = rewards_lib.RewardSet(
            [rewards_lib.RewardSpec(r.name, r.weight, r.kwargs) for r in cfg.rewards],
            fail_on_error=cfg.reward_fail_on_error, timeout_s=cfg.reward_timeout_s)
        self.rows = load_rows(d.source, d.num_samples, cfg.train.seed, d.split, d.subset,
                              d.preprocess, d.columns, needs=self.rewards.required_columns)
        self.rewards.check_signatures(set(self.rows[0]))
        if cfg.accuracy_reward is not None and cfg.accuracy_reward not in self.rewards.names:
            raise ConfigError(f"accuracy_reward {cfg.accuracy_reward!r} is not one of the recipe's rewards "
                              f"({', '.join(self.rewards.names) or 'none'})")
        self.accuracy = accuracy_reward(self.rewards.names, cfg.accuracy_reward)
        self.failures = rewards_lib.FailureStreak(cfg.reward_max_failed_steps)
        # One writer per run directory (rank 0's lock), no run replaced by accident; every rank
        # resumes from the checkpoint rank 0 picked.
        self.lock, ckpt = open_run_ranks(self.run_dir, cfg.model_dump(mode="json"), resume, overwrite, log=_warn,
                                         normalize=lambda t: validate_tree(Config, t).model_dump(mode="json"))
        try:
            self._init_rest(cfg, ckpt)
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise

    def _init_rest(self, cfg: Config, ckpt: Path | None) -> None:
        d = cfg.data
        m = cfg.model
        if m.precision == "fp8":          # fail before loading anything
            from .fp8 import check_fp8_support
            check_fp8_support()
        adapter = str(ckpt) if ckpt is not None and m.lora else None
        path = str(ckpt) if ckpt is not None and not m.lora else m.path
        self.tok, self.policy = load_policy(path, m.dtype, m.lora, trainable=True, adapter=adapter)
        self._prompt(self.rows[0]["prompt"])     # a prompt format error now, not at step 1
        self.policy = to_device(self.policy)     # this process's GPU, if any
        self.rows = check_prompt_lengths(self.rows, self._prompt, self.tok, model_context(self.policy), cfg.rollout.episode_tokens, d.overlong_prompts, log=_warn)
        self.sampler = PromptSampler(len(self.rows), cfg.train.prompts_per_step, cfg.train.seed)
        if m.gradient_checkpointing:
            if cfg.train.share_prompt:
                raise ConfigError("train.share_prompt needs the KV cache, which gradient checkpointing turns off")
            self.policy.gradient_checkpointing_enable()
        if m.precision == "fp8":
            from .fp8 import enable_fp8_training
            enable_fp8_training(self.policy)
        self.par.prepare(self.policy, fsdp=False)     # FSDP after the engine took its copy
        self.ref: Reference | None = load_reference(cfg, self.policy, self.par.prepare)
        t = cfg.algorithm.teacher               # on-policy distillation (distill.py)
        self.teacher = self.par.prepare(to_device(load_policy(t, m.dtype, None, trainable=False)[1])) if t else None
        if self.teacher is not None and self.teacher.config.vocab_size != self.policy.config.vocab_size:
            raise ConfigError(f"algorithm.teacher {t!r} has a vocabulary of {self.teacher.config.vocab_size}, the "
                              f"student {self.policy.config.vocab_size}: on-policy distillation needs the same tokenizer")
        self.engine = make_engine(cfg.rollout, self.policy, self.tok, synced=self.par.expert > 1)
        self.engine = wrap_engine(cfg, self.engine, self.tok, self._prompt, _warn)   # rollout.env: multi-turn
        self.policy = self.par.shard_policy(self.policy)   # FSDP2 (parallel.fsdp)
        self.engine.record_routing = cfg.algorithm.routing_replay   # MoE routing replay (R3)
        if replay_config_error(cfg, self.engine):
            raise ConfigError(replay_config_error(cfg, self.engine))
        self._routing = None
        k = cfg.rollout.staleness
        if k and self.par.expert > 1:
            raise ConfigError("rollout.overlap / max_staleness with parallel.expert > 1 is not supported yet")
        self.prefetch = (AsyncStream if cfg.rollout.fully_async else Prefetcher)(self.engine, k) if k else None
        if cfg.algorithm.rollout_correction in ("tis", "mis") and hasattr(self.engine, "return_logprobs"):
            self.engine.return_logprobs = True     # the hf engine computes them only when asked
        self._t_sync = self._t_sampling = 0.0

        params = [p for p in self.policy.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        t, a = cfg.train, cfg.algorithm  # one scheduler step per optimizer step: mu per batch updated on
        k = a.distill_replay             # (this step's, and with distill_replay up to k kept ones)
        self.replay = deque(maxlen=k) if k else None
        self.sched = optim.scheduler(self.opt, a.mu * sum(1 + min(s, k) for s in range(t.steps)),
                                     t.warmup_steps, t.schedule)
        self.start_step = checkpoint.restore(ckpt, self.policy, self.opt, self.sched, cfg.train.seed, _warn) if ckpt else 0

        self.log = None
        if self.par.is_main:              # one writer: rank 0 logs its own shard's metrics
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(dump_config(cfg))
            self.log = MetricsLogger(self.run_dir, self.start_step, trackers.for_run(
                cfg.output, self.run_dir, self.run_dir.name, cfg.model_dump(mode="json"), self.start_step))

    # ------------------------------------------------------------------ one step
    def step(self, step: int) -> dict:
        cfg, a = self.cfg, self.cfg.algorithm
        G = cfg.rollout.n
        rows = [self.rows[i] for i in self.par.shard(self.sampler.indices(step))]
        prompts = episode_prompts(cfg, [self._prompt(r["prompt"]) for r in rows], rows)
        t = {}

        # 1. Rollout: G completions per prompt from the current policy; with rollout.overlap,
        #    from the previous weights, sampled while the previous step trained (_rollout,
        #    which then also syncs the weights: its time is time/sync, not time/rollout).
        t0 = time.time()
        groups, stale = self._rollout(step, prompts)
        comps = [c for g in groups for c in g.completions]                  # N = B*G, prompt-major
        prompts = [g.prompt for g in groups]                                # an env's reset may set them
        t["rollout"] = time.time() - t0 - self._t_sync

        # 2. Rewards on every completion; dataset columns repeated G times.
        t0 = time.time()
        out = self._score(step, rows, prompts, comps)
        reward = torch.tensor(out.total, dtype=torch.float32)               # [N]
        t["reward"] = time.time() - t0

        # 3. Advantages within each group; optional DAPO filters.
        t0 = time.time()
        adv = (A.get(A.ADVANTAGES, a.advantage, "advantage")(reward, G) if G > 1    # [N]
               else torch.zeros_like(reward))     # n = 1 (distillation only): no group, no baseline
        zero_std = A.zero_std_groups(reward, G)                              # [B]
        keep = torch.ones(len(comps), dtype=torch.bool)
        if a.dynamic_sampling:                 # DAPO: groups with no reward variance teach nothing
            keep &= ~zero_std.repeat_interleave(G)
        batch, truncated = self._batch(groups, comps)

        # 4-5. Loss and optimizer steps (mu inner iterations over the same rollouts). Overlapped
        #      rollouts came from older weights: the sampler's log-probs are the old policy.
        behav = behaviour_logprobs(groups, batch.mask.shape[1])[keep] if self._correction(stale) != "off" else None
        self._routing = [c.routing for c, k in zip(comps, keep.tolist()) if k] if a.routing_replay else None
        skip = nothing_to_learn(adv[keep], batch.mask[keep], a.beta, teacher=self.teacher is not None)
        skip = not self.par.any(not skip)      # ranks update together (FSDP forwards are collectives)
        batch, cache = batch.slice(keep), ({} if self.replay is not None else None)  # cache: distill_replay's
        upd = dict.fromkeys(UPDATE_KEYS) if skip else self._update(batch, adv[keep], behav, stale, cache)
        if self.replay is not None:    # then passes over the last k steps' batches (no new teacher tokens)
            upd = update.replay(self, batch, cache, upd) if not skip else {**upd, "distill/replay_batches": 0}
        t["update"] = time.time() - t0

        # 6. Sync the new weights to the rollout engine (fully async: now, into the requests in
        #    flight; overlapped: when it is next idle, in the next step's _rollout).
        if not self.prefetch or cfg.rollout.fully_async:
            self._sync()
        t["sync"], self._t_sync = self._t_sync, 0.0

        texts = [c.text for c in comps]
        if self.par.is_main and ((step + 1) % cfg.output.sample_every == 0 or step == 0):
            self._write_samples(step + 1, prompts, texts, reward, out.per_fn, G)
        g = gather_step(self.par, self.rewards.names, out, comps, truncated, zero_std)   # all ranks'
        return {**g.reward_metrics, **upd, **self._step_metrics(g, t),
                **tool_stats_metrics(g.tools, getattr(self.engine, "tool_wall", None)),
                "rollout/stale_steps": stale, "update_skipped": int(skip),
                **(self.prefetch.metrics if cfg.rollout.fully_async else {}),   # per-sample staleness
                "lr": upd.get("lr") or self.opt.param_groups[0]["lr"]}   # the lr this step's update used

    def _batch(self, groups: list, comps: list):
        """The padded batch of the step's N = B*G sequences and which were cut off at the
        length limit ([N] bool); DAPO overlong filtering masks those (algorithm.mask_truncated)."""
        G = self.cfg.rollout.n
        batch = build_batch([g.prompt_ids for g in groups for _ in range(G)],
                            [c.token_ids for c in comps], self.tok.pad_token_id,
                            group=[i // G for i in range(len(comps))], loss_mask=[c.loss_mask for c in comps])
        truncated = torch.tensor([c.finish_reason == "length" for c in comps])
        if self.cfg.algorithm.mask_truncated:  # DAPO overlong filtering: no signal from cut-off text
            batch.mask[truncated] = 0
        return batch, truncated

    def _score(self, step: int, rows: list[dict], prompts: list[str], comps: list):
        """The RewardSet's output on every completion (columns repeated G times), with the
        failing rewards reported (_reward_health)."""
        G = self.cfg.rollout.n
        cols = {k: [r[k] for r in rows for _ in range(G)] for k in rows[0] if k != "prompt"}
        cols["completion_ids"] = [c.token_ids for c in comps]
        cols.update(env_columns(comps))
        cols["trainer_state"] = rewards_lib.TrainerState(step=step, total_steps=self.cfg.train.steps)
        per_sample = [p for p in prompts for _ in range(G)]
        out = self.rewards(per_sample, [c.text for c in comps], cols)
        self._reward_health(step + 1, out, per_sample)
        return out

    def _step_metrics(self, g, t: dict) -> dict:
        """Lengths, truncation, reflection and timing of one step, over all ranks' completions
        ``g`` (dist.metrics.StepRecords; the update's own metrics come from _update)."""
        lengths, truncated, zero_std = g.lengths, g.truncated, g.zero_std
        correct = self._correct(g.per_fn)
        n_refl = reflection_counts(g.texts, self.cfg.output.reflection_words)
        dt = sum(t.values())
        return {
            "completion_len/mean": sum(lengths) / len(lengths),
            "completion_len/max": max(lengths),
            "completion_len/correct": safe_mean([n for n, ok in zip(lengths, correct) if ok]),
            "completion_len/incorrect": safe_mean([n for n, ok in zip(lengths, correct) if ok is False]),
            "truncated_frac": truncated.float().mean().item(),
            "zero_std_frac": zero_std.float().mean().item(),
            "reflection/rate": sum(n > 0 for n in n_refl) / len(n_refl),
            "reflection/per_completion": sum(n_refl) / len(n_refl),
            **{f"time/{k}": v for k, v in t.items()}, "time/step": dt,
            "time/rollout_sampling": self._t_sampling,
            "tokens_per_s": sum(lengths) / max(t["rollout"] + t["update"], 1e-9),
            "completions_per_s": len(lengths) / max(dt, 1e-9),
        }

    def _correction(self, stale: int) -> str:
        """The rollout correction of a batch ``stale`` steps old: tis | mis | coupled (stale, with
        ``none``: the sampler's log-probs are PPO's old policy, no IS weight) | off (on-policy,
        none). ``auto``: tis where the sampler is not the trainer's own module (vllm, server)
        or is stale; off for the hf engine sampling the live policy (mismatch 0 in value)."""
        m = self.cfg.algorithm.rollout_correction
        if m == "auto":
            own = self.cfg.rollout.engine == "hf" or (self.cfg.rollout.engine == "auto" and
                                                      type(getattr(self.engine, "inner", self.engine)).__name__ == "HFEngine")
            r = self.cfg.rollout
            plain = r.temperature == 1.0 and r.top_p == 1.0 and not r.top_k   # else the ratio is not the policy's
            m = "tis" if plain and (stale or not own) else "none"
        if m == "none":
            return "coupled" if stale else "off"
        return m

    def _update(self, batch, adv: torch.Tensor, behav: torch.Tensor | None = None, stale: int = 0,
                teacher_cache: dict | None = None) -> dict:
        """mu optimizer steps on one batch (grpo/train/update.py)."""
        return update.update(self, batch, adv, behav, stale, teacher_cache)

    def _score_frozen(self, model, batch, temperature: float = 1.0) -> torch.Tensor:
        t = self.cfg.train
        with self.par.gathered(model):
            return score_all(model, batch, t.micro_batch_size, t.micro_batch_tokens, t.share_prompt, temperature)

    def _ref_logprobs(self, batch) -> torch.Tensor:
        with self.par.gathered(getattr(self.ref, "model", self.policy)):
            return self.ref.logprobs(batch, self.cfg.train)

    # ------------------------------------------------------------------ rollout, sync
    def _rollout(self, step: int, prompts: list[str]) -> tuple[list, int]:
        """This step's groups and how many optimizer steps older than the current weights
        the policy that sampled them is. Overlapped: take the groups sampled during the
        previous step, push the new weights into the now idle engine and start sampling
        the next step's, which then runs while this step's rewards and update do."""
        if not self.prefetch:
            t0 = time.time()
            with self.par.gathered(self.policy if getattr(self.engine, "model", None) is self.policy else None):
                groups = self.engine.generate(prompts, self._sampling())
            if self.cfg.rollout.sleep:    # its memory goes to the update; the sync/next generate wake it
                self.engine.sleep()
            self._t_sampling = time.time() - t0
            return groups, 0
        got = self.prefetch.take(step)
        if got is None:                   # the first step, or the first after a resume: on-policy
            t0 = time.time()
            got = self.engine.generate(prompts, self._sampling()), time.time() - t0, step
        groups, self._t_sampling, version = got
        if not self.cfg.rollout.fully_async:  # fully async syncs in flight right after each update (step 6)
            self._sync_before_prefetch()
        first = self.prefetch.next_step or step + 1
        for s in range(first, min(step + self.cfg.rollout.staleness, self.cfg.train.steps - 1) + 1):
            rs = [self.rows[i] for i in self.par.shard(self.sampler.indices(s))]
            nxt = episode_prompts(self.cfg, [self._prompt(r["prompt"]) for r in rs], rs)
            self.prefetch.start(s, nxt, self._sampling(), version=step)
        return groups, step - version

    def _sync_before_prefetch(self) -> None:
        """Overlap: the new weights reach the engine before the next step's sampling starts;
        with generations still queued the sync queues behind them (on a snapshot)."""
        if self.prefetch.busy:
            self.prefetch.sync([(n, p.detach().clone()) for n, p in self.par.named_full_parameters(self.policy)])
        else:
            self._sync()

    def _sync(self) -> None:
        t0 = time.time()
        self.engine.update_weights(self.par.named_full_parameters(self.policy))
        self._t_sync += time.time() - t0

    # ------------------------------------------------------------------ helpers
    def _prompt(self, question) -> str:
        return render_prompt(self.tok, question, **prompt_format(self.cfg.data))

    def _sampling(self) -> SamplingParams:
        return SamplingParams.from_rollout(self.cfg.rollout)

    def _correct(self, per_fn: dict) -> list[bool | None]:
        """Which completions count as correct, by the accuracy reward (``accuracy_reward``);
        all None (logged as null) when the recipe has none."""
        vals = per_fn.get(self.accuracy) if self.accuracy is not None else None
        if vals is None:
            return [None] * len(next(iter(per_fn.values()), []))
        return [None if v is None else v > 0.5 for v in vals]

    def _reward_health(self, step: int, out, prompts: list) -> None:
        """The first error of each failing reward, with its sample, to the console and to
        reward_errors.jsonl (once per step); stops the run when a reward keeps failing on
        every sample (reward_max_failed_steps)."""
        firsts = self.failures.update(self.rewards.names, out.errors, len(prompts))
        for e in firsts:
            _warn(f"grpo: warning: step {step}: reward {e['reward']!r} failed on {e['failed']}/{e['of']} "
                  f"samples; first: {e['error'][:300]} (sample {e['index']}: {e['completion'][:80]!r})")
        if firsts and self.par.is_main:
            with open(self.run_dir / "reward_errors.jsonl", "a") as fh:
                for e in firsts:
                    fh.write(json.dumps({"step": step, **e, "prompt": str(prompts[e["index"]])[:500]},
                                        ensure_ascii=False) + "\n")

    def _write_samples(self, step, prompts, texts, reward, per_fn, G) -> None:
        rows = [{"prompt": prompts[i // G], "completion": t, "reward": reward[i].item(),
                 **{k: v[i] for k, v in per_fn.items()}} for i, t in enumerate(texts)]
        write_samples(self.run_dir / "samples" / f"step-{step}.jsonl", rows)

    # ------------------------------------------------------------------ the run
    def train(self) -> Path:
        cfg = self.cfg
        bar = tqdm(range(self.start_step, cfg.train.steps), initial=self.start_step,
                   total=cfg.train.steps, desc=f"grpo {cfg.output.name}", dynamic_ncols=True,
                   disable=not self.par.is_main)
        try:
            for step in bar:
                metrics = self.step(step)
                if self.log is not None:
                    self.log.log(step + 1, metrics)
                bar.set_postfix(reward=f"{metrics['reward/mean']:.3f}",
                                len=f"{metrics['completion_len/mean']:.0f}")
                if (step + 1) % cfg.output.save_every == 0 or step + 1 == cfg.train.steps:
                    self._save(step + 1)
            if self.prefetch is not None and not cfg.rollout.fully_async:  # the engine serves the
                self.prefetch.close()                                       # final weights
                self._sync()
        finally:
            if self.prefetch is not None:
                self.prefetch.close()
            if self.log is not None:
                self.log.close()
            if cfg.rollout.engine == "openai":    # leave the server's weight group (it keeps serving)
                self.engine.close()
            if self.lock is not None:
                self.lock.release()
        return self.run_dir

    def _save(self, step: int) -> None:
        full = self.par.full_state_dict(self.policy)   # collective when experts are sharded
        every = self.cfg.output.full_checkpoint_every  # every rank writes its shard (collective)
        checkpoint.save(self.ckpt_root, step, self.policy, self.tok, self.opt, self.sched,
                        self.cfg.output.keep_checkpoints, state_dict=full,
                        full=every is None or step % every == 0 or step == self.cfg.train.steps)


def train(cfg: Config, resume: bool | str = False, overwrite: bool = False) -> Path:
    return Trainer(cfg, resume, overwrite).train()
