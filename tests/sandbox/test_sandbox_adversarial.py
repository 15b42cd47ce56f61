"""Hostile programs, one property per test, in every isolation mode available.

Each test checks (1) the status says what happened, (2) the host is
unchanged, (3) nothing of the run is left and the sandbox still runs a
correct program afterwards (``healthy``).
"""

from __future__ import annotations

import ast
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

import sandbox
from sandbox import limits

from sandbox_helpers import pids_with_arg, wait_until

OK = ["assert True"]


def needs_namespaces(box: sandbox.Sandbox, why: str) -> None:
    if box.mode().backend == "none":
        pytest.skip(f"'none' backend has no mount/network namespace: {why} (documented)")


def needs_private_uid(box: sandbox.Sandbox, why: str) -> None:
    if box.mode().backend == "none" and not box.root:
        pytest.skip(f"'none' backend without root runs the code as the caller's user: {why}"
                    " (documented)")


def test_infinite_loop_times_out(sb, healthy):
    r = sb.run("while True:\n    pass", OK, timeout_s=0.5)
    assert r.status == "timeout"
    assert 0.5 <= r.duration_s < 10.0  # generous: CI machines are loaded
    healthy(sb)


def test_fork_bomb_is_contained(sb, healthy):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    r = sb.run(bomb, OK, timeout_s=0.5)
    assert r.status == "timeout"
    healthy(sb)  # every forked process is gone, and RLIMIT_NPROC did not leak


def test_memory_bomb_hits_the_limit(sb, healthy):
    bomb = "chunks = []\nfor _ in range(64):\n    chunks.append(bytearray(16 << 20))\n"
    r = sb.run(bomb, OK, memory_mb=128)
    assert r.status == "memory", r
    assert "MemoryError" in r.stderr
    healthy(sb)


def test_huge_output_is_capped(sb, healthy):
    r = sb.run("while True:\n    print('x' * 10000)", OK)
    assert r.status == "output_limit"
    assert len(r.stdout) + len(r.stderr) <= limits.MAX_OUTPUT_BYTES + 200
    healthy(sb)


def test_file_size_limit_kills_a_disk_filler(sb, healthy):
    before = set(os.listdir(tempfile.gettempdir()))
    fill = "with open('big.bin', 'wb') as f:\n    while True:\n        f.write(bytes(1 << 20))\n"
    r = sb.run(fill, OK)
    assert r.status == "killed", r  # SIGXFSZ at RLIMIT_FSIZE (or EFBIG as pid 1)
    new = set(os.listdir(tempfile.gettempdir())) - before
    assert not [n for n in new if n.startswith("grpo-sandbox-")]  # its dir is gone
    healthy(sb)


def test_many_files_fill_only_the_private_tmpfs(sb, healthy):
    needs_namespaces(sb, "no per-run disk quota")
    fill = "for i in range(12):\n    open(f'f{i}', 'wb').write(bytes(8 << 20))\n"
    r = sb.run(fill, OK)
    assert r.status == "killed", r  # ENOSPC on the 64 MiB tmpfs
    assert "No space left" in r.stderr
    healthy(sb)


def test_cannot_modify_delete_or_create_files_outside(sb, healthy, tmp_path):
    needs_private_uid(sb, "it may write the caller's files")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    created = tmp_path / "created.txt"
    code = f"""
import os, shutil
attempts = [lambda: os.remove({str(victim)!r}),
            lambda: open({str(victim)!r}, 'w').write('pwned'),
            lambda: open({str(created)!r}, 'w').write('new'),
            lambda: shutil.rmtree({str(tmp_path)!r}),
            lambda: open('/usr/pwned', 'w'),
            lambda: open('/etc/pwned', 'w')]
outcomes = []
for attempt in attempts:
    try:
        attempt()
        outcomes.append('done')
    except OSError:
        outcomes.append('denied')
"""
    r = sb.run(code, ["assert outcomes == ['denied'] * 6, outcomes"])
    assert r.status == "ok", r
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.txt"]
    assert not os.path.exists("/usr/pwned") and not os.path.exists("/etc/pwned")
    healthy(sb)


def test_world_writable_host_dirs_are_not_reachable(sb, healthy):
    needs_namespaces(sb, "/tmp and /dev/shm are the host's")
    name = "grpo-sandbox-escape-" + secrets.token_hex(4)
    targets = [f"/tmp/{name}", f"/var/tmp/{name}", f"/dev/shm/{name}", f"../{name}"]
    code = f"for t in {targets!r}:\n    try:\n        open(t, 'w').write('x')\n    except OSError:\n        pass\n"
    r = sb.run(code, OK)
    assert r.status == "ok", r
    leaked = [t for t in targets[:3] + [f"/{name}"] if os.path.exists(t)]
    for t in leaked:
        os.remove(t)
    assert not leaked
    healthy(sb)


def test_parent_environment_is_invisible(sb, healthy, monkeypatch):
    value = secrets.token_hex(16)
    monkeypatch.setenv("GRPO_SANDBOX_TEST_SECRET", value)
    fresh = sandbox.Sandbox(sb.mode().backend, launch=sb.mode().launch)  # after setenv
    code = """
import os
name = 'GRPO_SANDBOX_TEST_SECRET'
seen = [k for k in os.environ if k == name]
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        with open(f'/proc/{pid}/environ', 'rb') as f:
            if name.encode() in f.read():
                seen.append(pid)
    except OSError:
        pass
print(sorted(os.environ))
"""
    try:
        r = fresh.run(code, ["assert seen == [], seen"])
    finally:
        fresh.close()
    assert r.status == "ok", r
    assert value not in r.stdout + r.stderr
    allowed = {"HOME", "LANG", "LC_ALL", "MALLOC_ARENA_MAX", "PATH", "TMPDIR", "PWD"}
    assert set(ast.literal_eval(r.stdout)) <= allowed  # PWD: set by bwrap
    healthy(sb)


@pytest.fixture
def listener():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.3)
    yield srv
    srv.close()


NET_CODE = """
import socket
def connect():
    with socket.create_connection(('127.0.0.1', {port}), timeout=2) as s:
        s.sendall(b'hello')
try:
    connect()
    outcome = 'connected'
except OSError as exc:
    import errno
    outcome = errno.errorcode.get(exc.errno, str(exc))
"""


def _assert_no_connection(srv: socket.socket) -> None:
    with pytest.raises(socket.timeout):
        srv.accept()


def test_network_is_unreachable(sb, healthy, listener):
    r = sb.run(NET_CODE.format(port=listener.getsockname()[1]),
               ["assert outcome != 'connected', outcome"])
    assert r.status == "ok", r
    _assert_no_connection(listener)
    healthy(sb)


def test_network_namespace_alone_blocks_the_host(sb, healthy, listener):
    needs_namespaces(sb, "only seccomp closes the network")
    box = sandbox.Sandbox(sb.mode().backend, launch=sb.mode().launch, use_seccomp=False)
    try:
        r = box.run(NET_CODE.format(port=listener.getsockname()[1]),
                    ["assert outcome in ('ECONNREFUSED', 'ENETUNREACH'), outcome"])
    finally:
        box.close()
    # The socket exists, but 127.0.0.1 is not the host's (bwrap brings up an
    # empty loopback: refused; unshare leaves it down: unreachable).
    assert r.status == "ok", r
    _assert_no_connection(listener)
    healthy(sb)


@pytest.fixture
def victim():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_cannot_kill_parent_or_other_processes(sb, healthy, victim):
    needs_private_uid(sb, "it may signal the caller's processes")
    code = f"""
import os, signal
for pid in ({victim.pid}, os.getppid(), 1, {os.getpid()}):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
"""
    r = sb.run(code, OK)
    assert r.status == "ok", r
    time.sleep(0.1)
    assert victim.poll() is None  # still sleeping
    healthy(sb)  # so is the zygote / launcher, or this would fail


def test_kill_minus_one_reaches_nothing_outside(sb, healthy, victim):
    needs_private_uid(sb, "it may signal the caller's processes")
    r = sb.run("import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n", OK)
    assert r.status == "ok", r
    time.sleep(0.1)
    assert victim.poll() is None
    healthy(sb)


def test_child_sleeping_past_the_timeout_is_killed(sb, healthy):
    marker = f"{900 + secrets.randbelow(99)}.{secrets.randbelow(10**6)}"
    r = sb.run(f"import subprocess\nsubprocess.run(['sleep', '{marker}'])", OK, timeout_s=0.5)
    assert r.status == "timeout"
    assert wait_until(lambda: not pids_with_arg(marker), 5.0), pids_with_arg(marker)
    healthy(sb)


def test_orphaned_grandchild_does_not_outlive_the_run(sb, healthy):
    needs_private_uid(sb, "no uid to kill escaped processes by")
    marker = f"{900 + secrets.randbelow(99)}.{secrets.randbelow(10**6)}"
    code = f"""
import os
if os.fork() == 0:          # child: new session, then a grandchild that sleeps
    os.setsid()
    if os.fork() == 0:
        os.execv('/bin/sleep', ['sleep', '{marker}'])
    os._exit(0)
os.wait()                   # the child exits at once; the grandchild is orphaned
"""
    r = sb.run(code, OK, timeout_s=30.0)
    assert r.status == "ok", r  # not "timeout": the run did not wait for the sleeper
    assert wait_until(lambda: not pids_with_arg(marker), 5.0), pids_with_arg(marker)
    healthy(sb)


def test_segfault_via_ctypes(sb, healthy):
    r = sb.run("import ctypes\nctypes.string_at(0)", OK)
    assert r.status == "killed", r
    assert f"signal {signal.SIGSEGV.value}" in r.stderr
    healthy(sb)


def test_runs_do_not_inherit_files_from_earlier_runs(sb, healthy):
    shared = sb.mode().backend != "none"  # only namespaces give /dev/shm per run
    paths = ["left.txt"] + (["/dev/shm/left.txt"] if shared else [])
    write = f"for p in {paths!r}:\n    open(p, 'w').write('from an earlier run')\n"
    assert sb.run(write, OK).status == "ok"
    r = sb.run(f"import os\nfound = [p for p in {paths!r} if os.path.exists(p)]",
               ["assert found == [], found"])
    assert r.status == "ok", r
    healthy(sb)


CALLER = """
import sys, threading
import sandbox
box = sandbox.Sandbox(sys.argv[1], launch=sys.argv[2])
code = "import subprocess\\nsubprocess.run(['sleep', '%s'])" % sys.argv[3]
threading.Thread(target=box.run, args=(code, ['assert True']), kwargs={'timeout_s': 60}).start()
threading.Event().wait()
"""


def test_runs_die_with_their_caller(sb, healthy):
    mode = sb.mode()
    if mode.launch == "spawn" and mode.backend != "bwrap":
        pytest.skip("bounded only by the `timeout` watchdog (start-up + timeout + grace)")
    marker = f"{900 + secrets.randbelow(99)}.{secrets.randbelow(10**6)}"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    caller = subprocess.Popen([sys.executable, "-c", CALLER, mode.backend, mode.launch, marker],
                              cwd=root, env={**os.environ, "PYTHONPATH": root})
    try:
        assert wait_until(lambda: pids_with_arg(marker), 20.0), "the run never started"
    finally:
        caller.kill()  # SIGKILL: no cleanup code runs in the caller
        caller.wait()
    assert wait_until(lambda: not pids_with_arg(marker), 5.0), pids_with_arg(marker)
    healthy(sb)


def test_code_runs_without_privileges(sb, healthy):
    needs_private_uid(sb, "nothing to drop")
    code = ("import os\nstatus = dict(line.split(':\\t') for line in\n"
            "              open('/proc/self/status').read().splitlines() if ':\\t' in line)\n")
    tests = ["assert os.getuid() != 0 and os.getgid() != 0 and os.getgroups() == []",
             "assert int(status['CapEff'], 16) == int(status['CapPrm'], 16) == 0",
             "assert int(status['CapAmb'], 16) == 0",
             "assert status['NoNewPrivs'] == '1'",
             f"assert status['Seccomp'] == '{2 if sb.mode().seccomp else 0}'",
             "import resource\nassert resource.getrlimit(resource.RLIMIT_NPROC)[1] <= 4096"]
    r = sb.run(code, tests)
    assert (r.status, r.passed) == ("ok", len(tests)), r
    healthy(sb)
