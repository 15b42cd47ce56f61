"""Code that tries to widen its sandbox or get memory, disk and packages it
was not given, and outcomes whose status must say what really happened.
One property per test, in every isolation mode available."""

from __future__ import annotations

import glob
import os

import pytest

from sandbox import backends

OK = ["assert True"]
LIBC = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
NR = {"clone": 56, "clone3": 435, "fsopen": 430, "shmget": 29}  # x86_64


def needs_seccomp(box):
    if not box.mode().seccomp:
        pytest.skip("no seccomp filter in this mode")


def needs_namespaces(box, why):
    if box.mode().backend == "none":
        pytest.skip(f"'none' backend has no mount namespace: {why} (documented)")


def outcome(box, code, expr="result()", **kw):
    """Run ``code`` and return the value of ``expr`` computed in the candidate."""
    r = box.run(code, [f"print(repr({expr}))"], **kw)
    assert r.status == "ok", r
    return eval(r.stdout.strip().splitlines()[-1])


# -- 2. no user namespaces: no CAP_SYS_ADMIN of its own ------------------------
def test_unshare_r_binary_fails(sb, healthy):
    needs_seccomp(sb)
    code = ("import subprocess\ndef result():\n    p = subprocess.run(['unshare', '-r', 'id'], "
            "capture_output=True)\n    return p.returncode, p.stdout\n")
    rc, out = outcome(sb, code)
    assert rc != 0 and b"uid=0" not in out
    healthy(sb)


def test_unshare_newuser_via_ctypes_is_eperm(sb, healthy):
    needs_seccomp(sb)
    code = LIBC + f"def result():\n    return libc.unshare({CLONE_NEWUSER}), ctypes.get_errno()\n"
    assert outcome(sb, code) == (-1, 1)
    healthy(sb)


def test_unshare_newuser_combined_with_other_flags_is_eperm(sb, healthy):
    needs_seccomp(sb)
    code = LIBC + (f"def result():\n    return libc.unshare({CLONE_NEWUSER | CLONE_NEWNS}), "
                   "ctypes.get_errno()\n")
    assert outcome(sb, code) == (-1, 1)
    healthy(sb)


def test_clone_with_newuser_is_eperm(sb, healthy):
    needs_seccomp(sb)
    code = LIBC + (f"def result():\n    r = libc.syscall({NR['clone']}, {CLONE_NEWUSER | 17}, 0, 0, 0, 0)\n"
                   "    if r == 0:\n        os._exit(0)\n    return r, ctypes.get_errno()\n")
    assert outcome(sb, code) == (-1, 1)
    healthy(sb)


def test_clone3_is_enosys_but_threads_fork_and_subprocess_work(sb, healthy):
    needs_seccomp(sb)
    code = LIBC + f"""
import subprocess, threading
def result():
    r = libc.syscall({NR['clone3']}, 0, 0), ctypes.get_errno()
    box = []
    t = threading.Thread(target=lambda: box.append(1))
    t.start()
    t.join()
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    status = os.waitpid(pid, 0)[1]
    return r, box, os.waitstatus_to_exitcode(status), subprocess.run(['true']).returncode
"""
    assert outcome(sb, code) == ((-1, 38), [1], 7, 0)
    healthy(sb)


def test_no_big_tmpfs_and_no_new_mount_api(sb, healthy):
    needs_seccomp(sb)
    code = LIBC + f"""
def result():
    os.makedirs('m', exist_ok=True)
    r1 = libc.mount(b'tmpfs', b'm', b'tmpfs', 0, b'size=12g'), ctypes.get_errno()
    r2 = libc.syscall({NR['fsopen']}, b'tmpfs', 0), ctypes.get_errno()
    return r1[0], r2
"""
    assert outcome(sb, code) == (-1, (-1, 1))
    healthy(sb)


# -- 3. memory outside RLIMIT_AS -------------------------------------------------
def test_sysv_shared_memory_is_refused(sb, healthy):
    needs_seccomp(sb)
    code = LIBC + (f"def result():\n    return libc.syscall({NR['shmget']}, 0, 256 << 20, 0o1600), "
                   "ctypes.get_errno()\n")
    assert outcome(sb, code, memory_mb=256) == (-1, 1)
    healthy(sb)


def test_memfd_is_refused(sb, healthy):
    needs_seccomp(sb)
    code = ("import os\ndef result():\n    try:\n        os.memfd_create('x')\n"
            "    except PermissionError:\n        return 'denied'\n    return 'created'\n")
    assert outcome(sb, code) == "denied"
    healthy(sb)


def test_posix_shared_memory_is_capped_by_the_tmpfs(sb, healthy):
    needs_namespaces(sb, "/dev/shm is the host's")
    code = """
import os
def result():
    written = 0
    try:
        for i in range(8):
            with open(f'/dev/shm/s{i}', 'wb') as f:
                f.write(bytes(4 << 20))
            written += 4
    except OSError as e:
        return written, e.errno
    return written, None
"""
    written, err = outcome(sb, code)
    assert written <= 16 and err == 28  # ENOSPC at the 16 MiB cap
    healthy(sb)


def test_none_backend_removes_files_left_in_shared_dirs(sb, healthy):
    if sb.mode().backend != "none" or not sb.root:
        pytest.skip("only the none backend (as root) writes to the host's /tmp and /dev/shm")
    name = f"grpo-leftover-{os.getpid()}"
    code = f"for d in ('/tmp', '/dev/shm'):\n    open(d + '/{name}', 'w').write('x')\n"
    assert sb.run(code, OK).status == "ok"
    assert not glob.glob(f"/tmp/{name}") and not glob.glob(f"/dev/shm/{name}")
    healthy(sb)


# -- 4. inodes -------------------------------------------------------------------
def test_empty_files_hit_the_inode_cap(sb, healthy):
    needs_namespaces(sb, "no per-run disk quota")
    code = """
def result():
    n = 0
    try:
        for i in range(250000):
            open(f'f{i}', 'w').close()
            n += 1
    except OSError as e:
        return n, e.errno
    return n, None
"""
    n, err = outcome(sb, code)
    assert n < 5000 and err == 28
    healthy(sb)


# -- 5. only the standard library ------------------------------------------------
def _host_package():
    """(dir, name) of an importable top-level package in a host package dir."""
    for d in backends.package_dirs(backends.python_interpreter()[1]):
        for init in sorted(glob.glob(os.path.join(d, "*", "__init__.py"))):
            name = os.path.basename(os.path.dirname(init))
            if name.isidentifier():
                return d, name
    pytest.skip("no package installed in any host package dir")


def test_host_packages_are_not_importable_even_via_sys_path(sb, healthy):
    needs_namespaces(sb, "the host's package dirs are visible")
    d, name = _host_package()
    code = f"""
import sys
def result():
    sys.path.append({d!r})
    for extra in ("/usr/lib/python3/dist-packages", "/usr/local/lib/python3/dist-packages"):
        sys.path.append(extra)
    try:
        __import__({name!r})
    except ImportError:
        return "absent"
    return "imported"
"""
    assert outcome(sb, code) == "absent"
    healthy(sb)


# -- 9. statuses that say what happened ----------------------------------------
def test_mmap_enomem_is_memory(sb, healthy):
    r = sb.run("import mmap\nm = mmap.mmap(-1, 1 << 40)", OK, memory_mb=128)
    assert r.status == "memory", r
    healthy(sb)


def test_runaway_recursion_is_a_recursion_error_not_a_timeout(sb, healthy):
    code = "import sys\nsys.setrecursionlimit(10 ** 8)\ndef f(n):\n    return f(n + 1) + 1\n"
    r = sb.run(code + "f(0)", OK, memory_mb=128, timeout_s=10.0)
    assert r.status == "error" and "RecursionError" in r.stderr, r
    healthy(sb)


def test_deep_but_finite_recursion_still_works(sb, healthy):
    code = ("import sys\nsys.setrecursionlimit(10 ** 6)\ndef depth(n):\n"
            "    return 0 if n == 0 else depth(n - 1) + 1\n")
    assert sb.run(code, ["assert depth(100000) == 100000"], timeout_s=10.0).status == "ok"
    healthy(sb)


def test_exception_subclassing_memory_error_is_an_error(sb, healthy):
    code = "class Fake(MemoryError):\n    pass\nraise Fake('not really')\n"
    assert sb.run(code, OK).status == "error"
    code = "class Fake(MemoryError):\n    pass\ndef f():\n    raise Fake()\n"
    r = sb.run(code, ["f()", "assert True"])
    assert r.status == "failed", r
    healthy(sb)


def test_hostile_metaclass_exception_loses_no_later_test(sb, healthy):
    code = """
class Meta(type):
    def __getattribute__(cls, name):
        raise RuntimeError("no attributes for you")
    def __repr__(cls):
        raise RuntimeError("no repr")
class Weird(Exception, metaclass=Meta):
    def __str__(self):
        raise RuntimeError("no str")
    @property
    def __class__(self):
        raise RuntimeError("no class")
def boom():
    raise Weird()
def good():
    return 1
"""
    r = sb.run(code, ["boom()", "assert good() == 1", "boom()", "assert good() == 1"])
    assert (r.status, r.passed, r.total) == ("failed", 2, 4), r
    healthy(sb)


def test_segfault_inside_a_call_is_killed_and_keeps_earlier_passes(sb, healthy):
    code = "import ctypes\ndef ok():\n    return 1\ndef crash():\n    ctypes.string_at(0)\n"
    r = sb.run(code, ["assert ok() == 1", "crash()", "assert ok() == 1"])
    assert (r.status, r.passed) == ("killed", 1), r
    assert "signal 11" in r.stderr
    healthy(sb)


def test_a_recipe_can_allow_a_named_package(sb, healthy):
    needs_namespaces(sb, "nothing is hidden, so nothing needs allowing")
    pytest.importorskip("numpy")
    import sandbox
    backend, _, launch = sb.mode()
    box = sandbox.Sandbox(backend=backend, launch=launch, allow_packages=["numpy"])
    try:
        code = "import numpy as np\ndef f(n):\n    return int(np.arange(n).sum())\n"
        assert box.run(code, ["assert f(10) == 45"], timeout_s=20.0).status == "ok"
        assert sb.run(code, ["assert f(10) == 45"]).status == "error"  # not allowed there
        d, name = _host_package()
        if name != "numpy":
            r = box.run(f"import sys\nsys.path.append({d!r})\nimport {name}", OK)
            assert r.status == "error" and "ModuleNotFoundError" in r.stderr
    finally:
        box.close()
    healthy(sb)


@pytest.mark.parametrize("bad", ["json", "no_such_package_anywhere", "not-a-name"])
def test_allow_packages_refuses_what_it_cannot_allow(bad):
    import sandbox
    with pytest.raises(ValueError) as e:
        sandbox.Sandbox(allow_packages=[bad])
    assert "allow_packages" in str(e.value) and "\n" not in str(e.value)


def test_without_seccomp_sysv_memory_is_still_capped_by_the_ipc_namespace(sb, healthy):
    needs_namespaces(sb, "no IPC namespace of its own")
    import sandbox
    backend, _, launch = sb.mode()
    box = sandbox.Sandbox(backend=backend, launch=launch, use_seccomp=False)
    try:
        code = LIBC + f"""
def result():
    big = libc.syscall({NR['shmget']}, 0, 512 << 20, 0o1600), ctypes.get_errno()
    small = libc.syscall({NR['shmget']}, 0, 1 << 20, 0o1600)
    return big, small >= 0
"""
        assert outcome(box, code, memory_mb=256) == ((-1, 22), True)  # EINVAL: over shmmax
    finally:
        box.close()
    healthy(sb)
