"""Child processes of the benchmark: commands run to completion, a process-tree
memory sampler and the embedded target.

Every child process is started with ``Popen`` and, when it must be stopped early, is
stopped with its whole process tree. ``subprocess.run`` is not used because on a
timeout it kills only its direct child. jupyter_client starts each kernel in a session
of its own, so a kill of the child's process group would miss the kernel too.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import psutil  # type: ignore[import-untyped]
from common import BenchError


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    Another process can take the port between this call and its use, so a caller
    that binds it must still handle a failed start.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def stop_tree(pid: int, grace_seconds: float = 10.0) -> None:
    """Terminate a process and all its descendants, then kill what is left."""
    try:
        root = psutil.Process(pid)
        tree = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for process in tree:
        with suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(tree, timeout=grace_seconds)
    for process in alive:
        with suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=grace_seconds)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a child that is still running, with its tree, and reap it."""
    stop_tree(process.pid)
    # psutil has already reaped the child, and wait() records that in the Popen object.
    process.wait()


def run_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300.0,
    ok_codes: tuple[int, ...] = (0,),
    log: Path | None = None,
) -> float:
    """Run a command to completion and return its wall time in seconds.

    The command's stdout and stderr go to the file ``log``, or to a temporary file
    when ``log`` is None. Raises BenchError with the tail of that output when the exit
    code is not in ``ok_codes`` or the command runs longer than ``timeout`` seconds.
    """
    with _output_file(log) as output:
        start = time.perf_counter()
        process = _start(argv, env, cwd, output)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(process)
            raise BenchError(
                f"{argv[0]} timed out after {timeout:g} s and was stopped."
            ) from None
        except BaseException:
            _stop(process)
            raise
        elapsed = time.perf_counter() - start
        _check_code(argv, code, ok_codes, output)
    return elapsed


def _output_file(log: Path | None) -> IO[bytes]:
    if log is None:
        return tempfile.TemporaryFile()
    return log.open("w+b")


def _start(
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    cwd: Path | None,
    output: IO[bytes],
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(argv),
        env=None if env is None else dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
    )


def _check_code(
    argv: Sequence[str], code: int, ok_codes: tuple[int, ...], output: IO[bytes]
) -> None:
    if code in ok_codes:
        return
    output.seek(0)
    tail = output.read().decode(errors="replace")[-2000:]
    command = " ".join(argv[:3])
    raise BenchError(f"{command} ... exited with code {code}; its output ends:\n{tail}")


@dataclass(frozen=True)
class TreePeak:
    """The peak memory of a process tree, summed over its processes, in bytes."""

    rss: int
    uss: int
    pss: int
    seconds: float
    samples: int


def sample_tree(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    interval: float = 0.02,
    timeout: float = 300.0,
    ok_codes: tuple[int, ...] = (0,),
) -> TreePeak:
    """Run a command and sample the memory of it and its descendants until it exits.

    Every ``interval`` seconds, sums RSS, USS and PSS over the process and all its
    descendants. psutil reads USS and PSS from /proc/PID/smaps_rollup. Returns the
    peak of each sum, so a spike shorter than ``interval`` can be missed.
    """
    peak = [0, 0, 0]
    count = 0
    with tempfile.TemporaryFile() as output:
        start = time.perf_counter()
        process = _start(argv, env, cwd, output)
        try:
            while process.poll() is None:
                if time.perf_counter() - start > timeout:
                    raise BenchError(
                        f"{argv[0]} timed out after {timeout:g} s and was stopped."
                    )
                sums = _tree_memory(process.pid)
                peak = [max(old, new) for old, new in zip(peak, sums, strict=True)]
                count += 1
                time.sleep(interval)
        except BaseException:
            _stop(process)
            raise
        elapsed = time.perf_counter() - start
        _check_code(argv, process.returncode, ok_codes, output)
    return TreePeak(peak[0], peak[1], peak[2], elapsed, count)


def _tree_memory(pid: int) -> tuple[int, int, int]:
    """Return the summed RSS, USS and PSS of a process and its descendants."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0, 0
    rss = uss = pss = 0
    for process in tree:
        try:
            memory = process.memory_full_info()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        rss += memory.rss
        uss += memory.uss
        pss += memory.pss
    return rss, uss, pss


@contextmanager
def embedded_target(
    veerunbook: Path, data_dir: Path, cwd: Path, timeout: float = 60.0
) -> Iterator[str]:
    """Serve the healthy embedded target on a free loopback port and yield its URL.

    The server is stopped when the block exits, also on an error or Ctrl-C.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [str(veerunbook), "simulate", "--port", str(port), "--scenario", "healthy"]
    argv += ["--data-dir", str(data_dir)]
    with tempfile.TemporaryFile() as log:
        process = _start(argv, None, cwd, log)
        try:
            _wait_healthy(url, process, timeout, log)
            yield url
        finally:
            # A server that exited early has been reaped, and its pid may be reused.
            if process.poll() is None:
                _stop(process)


def _wait_healthy(
    url: str, process: subprocess.Popen[bytes], timeout: float, log: IO[bytes]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-2000:]
            raise BenchError(
                f"the embedded target exited with code {process.returncode} before "
                f"it served /health; its output ends:\n{tail}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise BenchError(
        f"the embedded target at {url} did not serve /health in {timeout:g} s"
    )
