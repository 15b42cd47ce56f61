"""The one HTTP client of the rollout engines that talk to a server (server.py's
``ServerEngine``, openai.py's ``OpenAIEngine``): JSON or bytes, a bearer token, one-line
errors that name the server and the endpoint; and the server side's JSON answer."""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request


def token_from_env(name: str | None) -> str | None:
    """The shared token in environment variable ``name`` (never in a recipe), or None.

    >>> os.environ["GRPO_TEST_TOKEN"] = "s3cret"; token_from_env("GRPO_TEST_TOKEN")
    's3cret'
    >>> token_from_env(None) is None and token_from_env("GRPO_NO_SUCH_VAR_X") is None
    True
    """
    return (os.environ.get(name) or None) if name else None


def request(url: str, path: str, data: bytes | None = None, headers: dict | None = None, *,
            token: str | None = None, timeout: float = 600.0, method: str | None = None):
    """The decoded JSON answer of ``url + path`` (None for an empty body); GET without data."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + path, data=data, headers=h,
                                 method=method or ("GET" if data is None else "POST"))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        msg = " ".join(e.read().decode(errors="replace").split())
        raise ServerError(f"{url}{path}: HTTP {e.code}: {msg[:500]}", e.code) from None
    return json.loads(body) if body.strip() else None


def post_json(url: str, path: str, obj=None, **kw):
    return request(url, path, json.dumps(obj if obj is not None else {}).encode(),
                   {"Content-Type": "application/json"}, **kw)


def wait_ready(url: str, path: str, wait_s: float, *, alive=None, **kw):
    """Poll ``path`` for up to ``wait_s`` seconds (a server takes a while to load); with
    ``alive`` (a callable), give up as soon as it says the server's process is gone."""
    deadline = time.monotonic() + wait_s
    kw["timeout"] = min(30.0, kw.get("timeout", 30.0))
    while True:
        try:
            return request(url, path, **kw)
        except (urllib.error.URLError, ConnectionError, OSError):
            if alive is not None and not alive():
                raise ServerError(f"rollout server at {url} exited before it answered", None) from None
            if time.monotonic() >= deadline:
                if wait_s:
                    raise ServerError(f"rollout server at {url} did not answer in {wait_s:.0f}s", None) from None
                return None
            time.sleep(0.5)


def reply_json(handler, status: int, obj) -> None:
    """Answer a ``BaseHTTPRequestHandler`` request with ``obj`` as JSON (the server side)."""
    data = json.dumps(obj).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class ServerError(RuntimeError):
    """A rollout server answered with an error (``status``: the HTTP code) or not at all."""

    def __init__(self, msg: str, status: int | None):
        super().__init__(msg)
        self.status = status
