"""A python-tool env whose first call, whatever the model wrote, is hostile code (the
episode's number picks which); a test env for `rollout.env: {name: tests/tools/hostile_env.py:Hostile}`."""
import itertools
import os

from grpo.envs.python_tool import PythonTool

HOST = os.getpid()          # the trainer's own process: the code tries to kill it
ATTACKS = {
    "fork_bomb": "import os\nwhile True:\n    os.fork()",
    "infinite_loop": "while True:\n    pass",
    "huge_output": "import sys\nsys.stdout.write('x' * (100 * 2**20))",
    "read_passwd": "print(open('/etc/passwd').read())",
    "network": "import socket\ns = socket.create_connection(('1.1.1.1', 80), timeout=2)\nprint('connected')",
    "kill_parent": f"import os, signal\nos.kill({HOST}, signal.SIGKILL)\nos.kill(os.getppid(), signal.SIGKILL)\n"
                   "os.killpg(0, signal.SIGKILL)",
    "memory": "x = bytearray(8 * 2**30)\nprint(len(x))",
    "syntax": "def f(:\n  pass",
}
_count = itertools.count()


class Hostile(PythonTool):
    """kwargs as PythonTool's; ``stop`` defaults to a space, so nearly every first turn
    ends early and makes its (hostile) call."""

    def __init__(self, **kw):
        super().__init__(**{"timeout_s": 1.0, "memory_mb": 256, "max_output_chars": 200, "stop": [" "], **kw})
        self.attack = list(ATTACKS)[next(_count) % len(ATTACKS)]
        self.n = 0

    def step(self, action):
        self.n += 1
        if self.n > 1:
            return None, 0.0, True
        self.calls += 1
        return self.observation(self.run(ATTACKS[self.attack])), 0.0, False
