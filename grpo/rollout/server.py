"""Server mode: vLLM in its own process (or machine), the trainer talks to it over HTTP.

    python -m grpo.rollout.server --model data/tiny_model --port 8000    # or: grpo vllm-serve

``serve`` wraps a :class:`~grpo.rollout.vllm.VLLMEngine` (built from a path) in a stdlib
HTTP server; :class:`ServerEngine` is the trainer-side client with the same interface as
the other engines. Endpoints (JSON unless noted):

    GET  /health           {"ok": true, "weight_version": n}
    POST /generate         {"prompts": [...], "sampling": {SamplingParams fields}} -> {"groups": [...]}
    POST /score            {"prompt_ids": [[...]], "completion_ids": [[...]]} -> {"logprobs": [[...]]}
    POST /update_weights   body: a safetensors blob of HF-named tensors; header
                           X-Final: 1 on the last chunk (the update is applied then, at once)
    POST /init_broadcast   {"host": h, "port": p, "backend": "nccl"|"gloo"}: join the trainer's
                           two-member weight group (transport.py); answers at once
    POST /update_weights_broadcast  {"meta": [[name, dtype, shape], ...]}: receive those
                           tensors by broadcast, then apply them
    POST /sleep, /wake

By default weights travel as safetensors over HTTP: fine for small models and for tests
(the tiny model's 3.5 MB take milliseconds), wrong for billions of parameters. With
``weight_sync="broadcast"`` they go by a torch.distributed broadcast from the trainer
(NCCL on GPU, gloo on CPU; see transport.py); tested here over gloo only (no GPU).

The server is single-threaded (one vLLM engine, requests in order). It binds 127.0.0.1 by
default; any other bind needs a shared token (``--token-env VAR``: the token is read from
that environment variable), which every request must then carry as ``Authorization:
Bearer <token>`` (the client: ``rollout.api_key_env``); anyone who reaches a server without
one can replace its weights. ``rollout.engine: openai`` on a stock vLLM server is the
recommended path; this one stays for a release (it needs no dev-mode server).
"""
from __future__ import annotations

import argparse
import hmac
import json
import threading
import time
from dataclasses import asdict, fields
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Iterable

import torch

from . import http
from .base import Completion, Group, SamplingParams

_SAMPLING_FIELDS = {f.name for f in fields(SamplingParams)}


def _to_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save
    return save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})


def _from_bytes(blob: bytes) -> dict[str, torch.Tensor]:
    from safetensors.torch import load
    return load(blob)


# ---------------------------------------------------------------------------- server
class _Service:
    """The server's state (one engine, a weight update being buffered, the weight group)
    and one method per endpoint; ``ROUTES`` maps (method, path) to them."""

    def __init__(self, engine, token: str | None = None):
        self.engine, self.token = engine, token
        self.pending: dict[str, torch.Tensor] = {}    # chunks of an update not yet applied
        self.channel = None                           # the trainer's weight group, once joined
        self.join_error: str | None = None
        self.joining: threading.Thread | None = None

    def health(self, _body: bytes, _headers) -> dict:
        return {"ok": True, "weight_version": self.engine.weight_version}

    def update_weights(self, body: bytes, headers) -> dict:
        self.pending.update(_from_bytes(body))
        if headers.get("X-Final", "1") != "1":
            return {"ok": True, "buffered": len(self.pending)}
        t0 = time.perf_counter()
        self.engine.update_weights(list(self.pending.items()))
        n = len(self.pending)
        self.pending.clear()
        return {"ok": True, "tensors": n, "weight_version": self.engine.weight_version,
                "load_s": time.perf_counter() - t0}

    def init_broadcast(self, body: bytes, _headers) -> dict:
        """Join the trainer's weight group in the background: the trainer joins right after
        this answer."""
        self.channel, self.join_error = None, None
        self.joining = threading.Thread(target=self._join, args=(_json(body),), daemon=True)
        self.joining.start()
        return {"ok": True}

    def _join(self, req: dict) -> None:
        from .transport import WeightChannel
        try:
            self.channel = WeightChannel(req["host"], int(req["port"]), 1, backend=req.get("backend"),
                                         timeout_s=float(req.get("timeout_s", 600)))
        except Exception as e:  # noqa: BLE001 -- reported at the next update
            self.join_error = f"{type(e).__name__}: {e}"

    def update_weights_broadcast(self, body: bytes, _headers) -> dict:
        if self.joining is None:
            raise RuntimeError("POST /init_broadcast first")
        self.joining.join()
        if self.join_error is not None:
            raise RuntimeError(f"joining the weight group failed: {self.join_error}")
        t0 = time.perf_counter()
        meta = [(n, d, list(shape)) for n, d, shape in _json(body)["meta"]]
        self.engine.update_weights(self.channel.receive(meta))
        return {"ok": True, "tensors": len(meta), "weight_version": self.engine.weight_version,
                "load_s": time.perf_counter() - t0}

    def generate(self, body: bytes, _headers) -> dict:
        req = _json(body)
        sp = SamplingParams(**{k: v for k, v in req.get("sampling", {}).items() if k in _SAMPLING_FIELDS})
        return {"groups": [asdict(g) for g in self.engine.generate(req["prompts"], sp)]}

    def score(self, body: bytes, _headers) -> dict:
        req = _json(body)
        return {"logprobs": self.engine.score(req["prompt_ids"], req["completion_ids"])}

    def sleep(self, _body: bytes, _headers) -> dict:
        self.engine.sleep()
        return {"ok": True}

    def wake(self, _body: bytes, _headers) -> dict:
        self.engine.wake()
        return {"ok": True}

    ROUTES = {("GET", "/health"): health, ("POST", "/update_weights"): update_weights,
              ("POST", "/init_broadcast"): init_broadcast,
              ("POST", "/update_weights_broadcast"): update_weights_broadcast,
              ("POST", "/generate"): generate, ("POST", "/score"): score,
              ("POST", "/sleep"): sleep, ("POST", "/wake"): wake}

    def handle(self, method: str, path: str, body: bytes, headers) -> tuple[int, dict]:
        """(status, JSON reply) for one request: 404 for an unknown endpoint, 400 for a
        request missing a field, 500 (and keep serving) for anything else that fails."""
        if self.token is not None and not hmac.compare_digest(
                headers.get("Authorization", "").encode(), f"Bearer {self.token}".encode()):
            return 401, {"error": "a shared token is required: Authorization: Bearer <token>"}
        route = self.ROUTES.get((method, path))
        if route is None:
            return 404, {"error": f"no such endpoint: {method} {path}"}
        try:
            return 200, route(self, body, headers)
        except KeyError as e:
            return 400, {"error": f"{method} {path}: missing field {e}"}
        except Exception as e:  # noqa: BLE001 -- report, keep serving
            return 500, {"error": f"{type(e).__name__}: {e}"}


def _json(body: bytes) -> dict:
    req = json.loads(body or b"{}")
    if not isinstance(req, dict):
        raise ValueError("the request body must be a JSON object")
    return req


def _handler(engine, token: str | None = None):
    service = _Service(engine, token)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):          # quiet: one line per request is noise
            pass

        def _answer(self, method: str):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
            http.reply_json(self, *service.handle(method, self.path, body, self.headers))

        def do_GET(self):
            self._answer("GET")

        def do_POST(self):
            self._answer("POST")

    Handler.service = service
    return Handler


def check_bind(host: str, token: str | None) -> None:
    """A bind other than loopback needs a shared token.

    >>> check_bind("127.0.0.1", None); check_bind("0.0.0.0", "t")
    >>> check_bind("0.0.0.0", None)
    Traceback (most recent call last):
    ValueError: binding 0.0.0.0 (not loopback) needs a shared token: --token-env VAR, with the token in $VAR
    """
    if token is None and host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"binding {host} (not loopback) needs a shared token: --token-env VAR, with the token in $VAR")


def serve(model_path: str, host: str = "127.0.0.1", port: int = 8000, ready=None, token: str | None = None,
          **engine_kwargs) -> None:
    """Load ``model_path`` into vLLM and answer requests until interrupted.

    ``ready`` (optional callable) is called with the bound (host, port) once serving;
    ``token``: the shared token every request must carry (required off loopback).
    """
    from ..model.policy import load_tokenizer
    from .vllm import VLLMEngine
    check_bind(host, token)
    engine = VLLMEngine(model_path, load_tokenizer(model_path), **engine_kwargs)
    handler = _handler(engine, token)
    httpd = HTTPServer((host, port), handler)
    print(f"grpo vllm-serve: {model_path} on http://{host}:{httpd.server_port}", flush=True)
    if ready is not None:
        ready(httpd.server_address)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        if handler.service.channel is not None:
            handler.service.channel.close()
        engine.close()


# ---------------------------------------------------------------------------- client
class ServerEngine:
    """Rollout engine backed by a ``serve`` process (same interface as VLLMEngine).

    ``model`` is the trainer's policy: LoRA policies are merged before sending, as in the
    colocated engine. Weights are pushed in safetensors chunks of ``chunk_mb``; once at
    start too (the server loaded the checkpoint on disk, which a resumed or LoRA policy is
    not), unless ``sync_on_start=False``.
    """

    def __init__(self, model, tokenizer, rollout_cfg=None, *, url: str = "http://127.0.0.1:8000",
                 timeout: float = 600.0, chunk_mb: float = 256.0, wait_s: float = 0.0,
                 sync_on_start: bool = True, weight_sync: str = "http", broadcast_port: int = 29555,
                 backend: str | None = None, token: str | None = None):
        self.model, self.tok, self.token = model, tokenizer, token
        self.url = url.rstrip("/")
        self.timeout, self.chunk_bytes = timeout, int(chunk_mb * 2 ** 20)
        self.weight_version = 0
        self.sync_seconds = 0.0
        self.channel = None
        self.wait_ready(wait_s)
        if weight_sync == "broadcast":
            self._join_broadcast(broadcast_port, backend)
        elif weight_sync != "http":
            raise ValueError(f"weight_sync must be http or broadcast, not {weight_sync!r}")
        if sync_on_start and model is not None:
            self.update_weights(model.named_parameters())

    def _request(self, path: str, data: bytes | None = None, headers: dict | None = None) -> dict:
        return http.request(self.url, path, data, headers, token=self.token, timeout=self.timeout)

    def _post_json(self, path: str, obj) -> dict:
        return http.post_json(self.url, path, obj, token=self.token, timeout=self.timeout)

    def wait_ready(self, wait_s: float) -> dict:
        """Poll /health for up to ``wait_s`` seconds (a server takes a while to load)."""
        return http.wait_ready(self.url, "/health", wait_s, token=self.token) or {}

    def generate(self, prompts: list[str], sampling: SamplingParams) -> list[Group]:
        out = self._post_json("/generate", {"prompts": prompts, "sampling": asdict(sampling)})
        return [Group(g["prompt"], g["prompt_ids"], [Completion(**c) for c in g["completions"]])
                for g in out["groups"]]

    def score(self, prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> list[list[float]]:
        return self._post_json("/score", {"prompt_ids": prompt_ids, "completion_ids": completion_ids})["logprobs"]

    def _join_broadcast(self, port: int, backend: str | None) -> None:
        from .transport import WeightChannel, default_backend, local_address_towards
        host = local_address_towards(self.url)
        backend = backend or default_backend()
        self._post_json("/init_broadcast", {"host": host, "port": port, "backend": backend,
                                            "timeout_s": self.timeout})
        self.channel = WeightChannel(host, port, 0, backend=backend, timeout_s=self.timeout)

    def _update_broadcast(self, named: list) -> dict:
        """Metadata over HTTP (on a thread: the server answers after receiving), tensors by
        broadcast meanwhile."""
        box: dict = {}

        def post():
            try:
                box["res"] = self._post_json("/update_weights_broadcast", {"meta": self.channel.describe(named)})
            except Exception as e:  # noqa: BLE001 -- re-raised below
                box["err"] = e
        th = threading.Thread(target=post, daemon=True)
        th.start()
        self.channel.send(named)
        th.join()
        if "err" in box:
            raise box["err"]
        return box["res"]

    def close(self) -> None:
        """Leave the weight group (the server keeps serving)."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]] = ()) -> None:
        from .weights import vllm_weights           # LoRA merge and name clean-up
        t0 = time.perf_counter()
        if self.channel is not None:
            res = self._update_broadcast(list(vllm_weights(self.model, named_tensors)))
            self.weight_version = res.get("weight_version", self.weight_version + 1)
            self.sync_seconds = time.perf_counter() - t0
            return
        chunk, size = {}, 0
        for name, t in vllm_weights(self.model, named_tensors):
            chunk[name] = t
            size += t.numel() * t.element_size()
            if size >= self.chunk_bytes:
                self._send(chunk, final=False)
                chunk, size = {}, 0
        res = self._send(chunk, final=True)
        self.weight_version = res.get("weight_version", self.weight_version + 1)
        self.sync_seconds = time.perf_counter() - t0

    def _send(self, tensors: dict, final: bool) -> dict:
        return self._request("/update_weights", _to_bytes(tensors),
                             {"Content-Type": "application/octet-stream", "X-Final": "1" if final else "0"})

    def sleep(self) -> None:
        self._post_json("/sleep", {})

    def wake(self) -> None:
        self._post_json("/wake", {})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="grpo vllm-serve", description="serve a model for rollouts over HTTP")
    ap.add_argument("--model", required=True, help="model directory (the policy's starting checkpoint)")
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only; any other "
                    "needs --token-env)")
    ap.add_argument("--token-env", default=None, metavar="VAR",
                    help="environment variable holding the shared token every request must carry")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    ap.add_argument("--max-model-len", type=int, default=None)
    a = ap.parse_args(argv)
    token = http.token_from_env(a.token_env)
    if a.token_env and token is None:
        ap.error(f"--token-env {a.token_env}: that environment variable is empty or unset")
    try:
        check_bind(a.host, token)
    except ValueError as e:
        ap.error(str(e))

    class _Cfg:                                     # what VLLMEngine reads from a rollout config
        gpu_memory_utilization = a.gpu_memory_utilization
    serve(a.model, a.host, a.port, token=token, rollout_cfg=_Cfg(), max_model_len=a.max_model_len)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
