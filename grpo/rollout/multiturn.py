"""Multi-turn, tool-using rollouts over any engine: the model's turns alternate with an
environment's observations (grpo/envs, docs/TOOLS.md).

Batched across the whole step: turn 1 is one ``engine.generate`` of all B prompts x G;
then, every turn, the tool calls of all unfinished episodes run concurrently (a thread
pool: the python tool's sandbox runs are processes), their observations are appended,
and all episodes still going continue together in one ``engine.generate_ids`` call.

An episode's ``token_ids`` are the concatenation of exactly the ids each turn sampled and
the ids of each observation (tokenized alone, ``add_special_tokens=False``): sampled text
is never decoded and re-encoded, so the trainer scores the very tokens that were sampled.
``loss_mask`` is 1 on sampled tokens, 0 on observation tokens (the model is not trained on
text it did not write). Its ``text`` (what rewards see) is the whole trajectory: turns and
observations. An episode ends when the env says done, at ``max_turns`` model turns, or at
``max_total_tokens`` (turns plus observations; an observation is cut to fit).
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from .base import Completion, Group, SamplingParams, ToolStats, special_tokens


class EnvPrompt(str):
    """A rendered prompt that carries its dataset row (``.row``), so the multi-turn engine
    can reset one env per episode with it; a plain ``str`` everywhere else."""
    row: dict

    def __new__(cls, text: str, row: dict):
        s = super().__new__(cls, text)
        s.row = row
        return s


def with_rows(prompts: list[str], rows: list[dict]) -> list[EnvPrompt]:
    return [EnvPrompt(p, r) for p, r in zip(prompts, rows)]


@dataclass
class _Episode:
    env: Any
    prompt_ids: list[int]
    ids: list[int] = field(default_factory=list)          # [T] turns and observations
    mask: list[int] = field(default_factory=list)         # [T] 1 sampled, 0 observation
    logprobs: list[float] | None = field(default_factory=list)
    text: list[tuple] = field(default_factory=list)      # (text or None: cut, start, end) per part
    stats: ToolStats = field(default_factory=ToolStats)
    finish: str = "stop"
    done: bool = False
    last: Completion | None = None

    def add_turn(self, c: Completion, budget: int) -> None:
        room = budget - len(self.ids)
        ids, lps, finish = c.token_ids, c.logprobs, c.finish_reason
        if len(ids) > room:            # a batch's max_new_tokens is its roomiest row's
            ids, lps, finish = ids[:room], None if lps is None else lps[:room], "length"
        lo = len(self.ids)
        self.ids += ids
        self.mask += [1] * len(ids)
        self.logprobs = None if self.logprobs is None or lps is None else self.logprobs + list(lps)
        self.text.append((c.text if len(ids) == len(c.token_ids) else None, lo, len(self.ids)))
        self.stats.turns += 1
        self.last = replace(c, token_ids=ids, finish_reason=finish)
        if finish == "length":
            self.end("tokens" if len(self.ids) >= budget else "length", "length")

    def add_observation(self, obs_ids: list[int], text: str, budget: int) -> None:
        room = budget - len(self.ids)
        cut, lo = obs_ids[:room], len(self.ids)
        self.ids += cut
        self.mask += [0] * len(cut)
        if self.logprobs is not None:
            self.logprobs += [0.0] * len(cut)
        self.text.append((text if len(cut) == len(obs_ids) else None, lo, len(self.ids)))
        if len(self.ids) >= budget:
            self.end("tokens", "length")

    def end(self, why: str, finish: str | None = None) -> None:
        self.done, self.stats.ended = True, why
        if finish:
            self.finish = finish


class MultiTurnEngine:
    """An engine whose ``generate`` runs episodes with an env; everything else (weights,
    sleep, attributes such as ``return_logprobs``) is the wrapped engine's."""

    _OWN = ("inner", "make_env", "tok", "render", "max_turns", "max_total_tokens", "workers",
            "log", "tool_wall")

    def __init__(self, engine, make_env: Callable[[], Any], tok, render: Callable | None = None,
                 max_turns: int = 1, max_total_tokens: int | None = None, workers: int = 16,
                 log: Callable[[str], None] | None = None):
        if not callable(getattr(engine, "generate_ids", None)):
            raise ValueError(f"multi-turn rollouts need an engine that continues from token ids "
                             f"(hf, vllm); {type(engine).__name__} does not")
        for k, v in dict(inner=engine, make_env=make_env, tok=tok, render=render, max_turns=max_turns,
                         max_total_tokens=max_total_tokens, workers=workers, log=log, tool_wall=0.0).items():
            object.__setattr__(self, k, v)

    def __getattr__(self, name):            # only for names this object does not have
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __setattr__(self, name, value):
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self.inner, name, value)

    def generate(self, prompts: list[str], sampling: SamplingParams) -> list[Group]:
        G = sampling.n
        budget = self.max_total_tokens or sampling.max_new_tokens
        envs = [self.make_env() for _ in range(len(prompts) * G)]
        specials = frozenset(special_tokens(self.tok))
        for env in envs:
            if hasattr(env, "special_tokens"):       # grpo.envs.Env: escape them in tool output
                env.special_tokens = specials
        rendered = [self._reset(p, envs[b * G:(b + 1) * G]) for b, p in enumerate(prompts)]
        stops = list(dict.fromkeys([*sampling.stop, *(s for s in getattr(envs[0], "stop", []) if s)]))
        sp = replace(sampling, stop=stops, max_new_tokens=min(sampling.max_new_tokens, budget))
        groups = self.inner.generate(rendered, sp)
        eps = [_Episode(envs[i], g.prompt_ids) for i, g in enumerate(x for x in groups for _ in range(G))]
        for ep, c in zip(eps, (c for g in groups for c in g.completions)):
            ep.add_turn(c, budget)
        self.tool_wall = 0.0
        while True:
            self._step_envs([e for e in eps if not e.done], budget)
            todo = [e for e in eps if not e.done]
            if not todo:
                break
            room = max(budget - len(e.ids) for e in todo)
            comps = self.inner.generate_ids([e.prompt_ids + e.ids for e in todo],
                                             replace(sp, n=1, max_new_tokens=min(sp.max_new_tokens, room)))
            for e, c in zip(todo, comps):
                e.add_turn(c, budget)
        for g, chunk in zip(groups, (eps[b * G:(b + 1) * G] for b in range(len(groups)))):
            g.completions = [self._completion(e) for e in chunk]
        return groups

    def _reset(self, prompt: str, envs: list) -> str:
        row = getattr(prompt, "row", None)
        qs = [env.reset(row if row is not None else {"prompt": prompt}) for env in envs]
        if row is None:                  # already rendered by the caller
            return str(prompt)
        out = [self.render(q) if self.render else q for q in qs]
        if any(o != out[0] for o in out):
            raise ValueError("env.reset returned different prompts for one row: the G episodes of a "
                             "group share one prompt (reset must depend on the row only)")
        return str(out[0])

    def _step_envs(self, eps: list[_Episode], budget: int) -> None:
        """Every episode's env steps on its latest turn, concurrently; observations are
        appended (tokenized alone) or the episode ends."""
        if not eps:
            return
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=min(self.workers, len(eps))) as pool:
            results = list(pool.map(lambda e: _safe_step(e.env, e.last.text), eps))
        self.tool_wall += time.perf_counter() - t0
        for e, (obs, reward, done, dt, err) in zip(eps, results):
            e.stats.reward += reward
            e.stats.calls += obs is not None
            e.stats.time_s += dt
            if err is not None:
                e.stats.env_failures += 1
                if self.log is not None:
                    self.log(f"grpo: warning: env.step raised {err}; the episode ends")
                e.end("env_error")
                continue
            if obs is not None and not done and e.stats.turns >= self.max_turns:
                e.end("turns", "length")        # a call the model cannot read the answer of
                continue
            if obs is not None:
                e.add_observation(self.tok(obs, add_special_tokens=False).input_ids, obs, budget)
            if done and not e.done:
                e.end("done", e.last.finish_reason)

    def _completion(self, e: _Episode) -> Completion:
        st, env = e.stats, e.env
        st.calls, st.errors = _counters(env, st)
        # A cut part's text is the decoding of its kept ids (text only: never re-encoded).
        text = "".join(t if t is not None else self.tok.decode(e.ids[lo:hi], skip_special_tokens=True)
                       for t, lo, hi in e.text)
        return Completion(text, e.ids, e.logprobs, e.finish, loss_mask=e.mask, tools=st)


def _counters(env, st: ToolStats) -> tuple[int, int]:
    """(calls, errors): the env's own counters when it keeps them (grpo.envs.Env does),
    else observations returned (calls) and 0 errors; env exceptions count as errors."""
    calls = getattr(env, "calls", None)
    errors = getattr(env, "errors", None)
    calls = calls if isinstance(calls, int) else st.calls
    errors = errors if isinstance(errors, int) else 0
    return calls, errors + st.env_failures


def _safe_step(env, action: str):
    """(observation, reward, done, seconds, error text or None): an env that raises or
    returns something malformed ends its episode, counted, instead of the run."""
    t0 = time.perf_counter()
    try:
        out = env.step(action)
        obs, reward, done = out
        if obs is not None and not isinstance(obs, str):
            raise TypeError(f"observation must be a str or None, not {type(obs).__name__}")
        reward = float(reward)
        if reward != reward or reward in (float("inf"), float("-inf")):
            raise ValueError(f"non-finite reward {reward}")
        return obs, reward, bool(done), time.perf_counter() - t0, None
    except Exception as e:
        return None, 0.0, True, time.perf_counter() - t0, f"{type(e).__name__}: {str(e)[:200]}"
