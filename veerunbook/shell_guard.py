"""A supervisor that ends a configured command when the process that started it dies.

``veerunbook.shell`` starts every command as
``python -P veerunbook/shell_guard.py PARENT_PID SECONDS /bin/sh -c COMMAND`` in a new
session. The guard is the leader of that session's process group, and the shell it
starts stays in the same group, so killing the group ends the guard, the shell and
every child that did not leave the group. The guard waits for the shell and polls
twice:

- whether its parent is still ``PARENT_PID``. When that process dies (a runner or a
  kernel killed with SIGKILL), the guard is reparented and kills the group at once,
  so a rollback command cannot land after its run has ended;
- whether ``SECONDS`` have passed since it started. The runner kills the group at its
  own deadline; this one comes ``GUARD_MARGIN_SECONDS`` later and bounds a command
  whose runner is alive but stopped.

A poll of ``os.getppid`` is used instead of ``PR_SET_PDEATHSIG``, because the kernel
sends that signal when the parent *thread* ends, not the parent process, so a command
started from a worker thread would die early. It also needs ``prctl`` through ctypes
and a ``preexec_fn``, which is unsafe in a process with threads. Detection takes up to
``POLL_SECONDS``.

When the shell exits, the guard exits with the same code. When a signal ends the
shell, the guard ends itself with the same signal, so its return code is -N too. A
process that leaves the group (``setsid``) is out of reach, as for any process group
kill.
The guard imports only the standard library and is run by path, with ``-P``, so a
``veerunbook`` folder in the command's working directory cannot replace it.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

# How often the guard looks at its parent and the clock.
POLL_SECONDS = 0.1
# The guard's deadline comes this long after the runner's, so that in a normal run
# the runner's kill, which it reports as a timeout, comes first.
GUARD_MARGIN_SECONDS = 5.0
# Exit code of the guard when its arguments are wrong or the shell cannot start,
# as a shell reports a command it cannot run.
CANNOT_RUN = 127


def guard_command(parent_pid: int, timeout_s: float, argv: Sequence[str]) -> list[str]:
    """Return the argument list that runs ``argv`` under the guard."""
    script = os.path.abspath(__file__)
    return [sys.executable, "-P", script, str(parent_pid), repr(timeout_s), *argv]


def main(args: Sequence[str]) -> int:
    """Run ``args[2:]`` for its parent ``args[0]`` and at most ``args[1]`` seconds."""
    try:
        parent = int(args[0])
        limit = float(args[1]) + GUARD_MARGIN_SECONDS
        argv = list(args[2:])
        if not argv:
            raise ValueError("no command")
    except (IndexError, ValueError):
        print(
            "usage: shell_guard.py PARENT_PID SECONDS PROGRAM [ARG ...]",
            file=sys.stderr,
        )
        return CANNOT_RUN
    deadline = time.monotonic() + limit

    # The parent may have died before this line, and then the command must not start.
    if os.getppid() != parent:
        return CANNOT_RUN
    try:
        child = subprocess.Popen(argv)
    except OSError as exc:
        print(f"cannot start {argv[0]}: {exc.strerror or exc}", file=sys.stderr)
        return CANNOT_RUN

    code = _wait(child, parent, deadline)
    if code < 0:
        _end_like(-code)
    return code


def _wait(child: subprocess.Popen[bytes], parent: int, deadline: float) -> int:
    """Wait for ``child``, and kill the group when the parent is gone or time is up."""
    while True:
        try:
            return child.wait(POLL_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent or time.monotonic() >= deadline:
            # The group's id is the guard's pid, as it leads its session.
            os.killpg(os.getpgrp(), signal.SIGKILL)


def _end_like(signum: int) -> None:
    """End this process with ``signum``, without a core file."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    # A signal whose default action is to ignore it, such as SIGCHLD, lands here.
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
