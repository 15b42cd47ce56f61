"""serve_vllm: start a stock vLLM server, wait for it, stop it; a server that fails to start
is one error carrying its log (default tier: a stand-in for the vLLM interpreter)."""
import sys
import textwrap
import time

import pytest

from grpo.rollout import http
from grpo.rollout.openai import serve_vllm

# A stand-in "python" that serves /health on the --port it is given, after a short load.
FAKE = textwrap.dedent("""\
    #!{python}
    import http.server, sys, time
    port = int(sys.argv[sys.argv.index("--port") + 1])
    print("loading", sys.argv[sys.argv.index("--model") + 1], flush=True)
    time.sleep(1.5)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
""")


def _script(tmp_path, text: str):
    p = tmp_path / "python"
    p.write_text(text.format(python=sys.executable))
    p.chmod(0o755)
    return str(p)


def test_yields_a_live_url_and_stops_the_server(tmp_path):
    with serve_vllm("some/model", tmp_path / "log", python=_script(tmp_path, FAKE), wait_s=30) as url:
        assert http.request(url, "/health", timeout=5) is None  # answered, empty body
    time.sleep(0.2)
    with pytest.raises(OSError):
        http.request(url, "/health", timeout=2)
    assert "loading some/model" in (tmp_path / "log").read_text()


def test_a_server_that_exits_is_one_error_with_its_log(tmp_path):
    crash = "#!{python}\nimport sys\nprint('ValueError: bad --dtype', file=sys.stderr)\nsys.exit(3)\n"
    t0 = time.monotonic()
    with pytest.raises(http.ServerError, match=r"exited with 3(.|\n)*ValueError: bad --dtype"):
        with serve_vllm("m", tmp_path / "log", python=_script(tmp_path, crash), wait_s=60):
            pass
    assert time.monotonic() - t0 < 20  # noticed when it exits, not at the deadline


def test_a_server_that_never_answers_times_out(tmp_path):
    hang = "#!{python}\nimport time\ntime.sleep(60)\n"
    with pytest.raises(http.ServerError, match="was not up in 2 s"):
        with serve_vllm("m", tmp_path / "log", python=_script(tmp_path, hang), wait_s=2):
            pass


def test_without_vllm_installed_the_error_says_so(tmp_path):
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed here")
    except ImportError:
        pass
    with pytest.raises(http.ServerError, match="No module named"):
        with serve_vllm("m", tmp_path / "log", python=sys.executable, wait_s=60):
            pass
