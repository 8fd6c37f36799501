"""The bounded command runner, run on real shells and real processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from veerunbook.redact import Redactor
from veerunbook.shell import (
    MAX_OUTPUT_CHARS,
    fill_template,
    placeholders,
    run_command,
)

SECRET = "s3cr3t-db-pass-4242"


@pytest.fixture
def pid_file(tmp_path: Path) -> Iterator[Path]:
    """A file where a test command writes the pid of a process it leaves behind.

    The process is killed after the test, so no stray process outlives it.
    """
    path = tmp_path / "leftover.pid"
    yield path
    if path.is_file():
        for line in path.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line), signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return "\nState:\tZ" not in status.read()
    except FileNotFoundError:
        return False


def _wait_for_file(path: Path, attempts: int = 200) -> str:
    # The command wrote the file before the runner returned, except for a process
    # started in the background, which gets a little longer.
    for _ in range(attempts):
        if path.is_file() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.01)
    raise AssertionError(f"{path} was never written")


def test_exit_code_and_output() -> None:
    result = run_command(
        "echo out; echo err >&2; exit 3", timeout_s=10, redactor=Redactor()
    )
    assert result.exit_code == 3
    assert not result.ok
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert not result.timed_out
    assert result.error is None


def test_exit_zero_is_ok() -> None:
    result = run_command("true", timeout_s=10, redactor=Redactor())
    assert result.exit_code == 0
    assert result.ok
    assert result.summary().startswith("exited 0 in ")


def test_missing_program_exit_127() -> None:
    result = run_command("no-such-program-xyz", timeout_s=10, redactor=Redactor())
    assert result.exit_code == 127
    assert "not found" in result.stderr


def test_missing_cwd_cannot_start(tmp_path: Path) -> None:
    result = run_command(
        "true", timeout_s=10, redactor=Redactor(), cwd=tmp_path / "missing"
    )
    assert result.exit_code is None
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("cannot start: ")


def test_cwd_is_used(tmp_path: Path) -> None:
    result = run_command("pwd", timeout_s=10, redactor=Redactor(), cwd=tmp_path)
    assert result.stdout == f"{tmp_path}\n"


def test_secrets_masked_everywhere() -> None:
    result = run_command(
        f"echo postgresql://app:{SECRET}@db/veefore; echo {SECRET} >&2; exit 1",
        timeout_s=10,
        redactor=Redactor([SECRET]),
    )
    assert result.stdout == "postgresql://app:***@db/veefore\n"
    assert result.stderr == "***\n"
    assert SECRET not in result.command
    assert SECRET not in json.dumps(result.to_dict())


def test_secret_value_masked_in_command() -> None:
    result = run_command(
        "echo {password}",
        values={"password": SECRET},
        timeout_s=10,
        redactor=Redactor([SECRET]),
    )
    assert result.command == "echo ***"
    assert result.stdout == "***\n"


def test_value_stays_one_argument(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("still here")
    hostile = f"1.4.1; rm -rf {victim}; echo $(id) `id` && true"
    result = run_command(
        f'{sys.executable} -c "import sys, json; print(json.dumps(sys.argv[1:]))"'
        " {version}",
        values={"version": hostile},
        timeout_s=30,
        redactor=Redactor(),
    )
    assert result.ok
    assert json.loads(result.stdout) == [hostile]
    assert victim.read_text() == "still here"


def test_value_with_quotes_and_newline() -> None:
    value = 'it\'s "quoted"\nand two lines'
    result = run_command(
        "printf '%s|' {backup}",
        values={"backup": value},
        timeout_s=10,
        redactor=Redactor(),
    )
    assert result.stdout == value + "|"


def test_fill_template_quotes_each_placeholder() -> None:
    filled = fill_template(
        "restore {backup} --to {version}", {"backup": "a b", "version": "1.4.1"}
    )
    assert filled == "restore 'a b' --to 1.4.1"


def test_fill_template_leaves_shell_braces() -> None:
    template = "awk '{print $1}' ${HOME} {Upper} {version}"
    assert placeholders(template) == ["version"]
    filled = fill_template(template, {"version": "2"})
    assert filled == "awk '{print $1}' ${HOME} {Upper} 2"


def test_fill_template_missing_value() -> None:
    with pytest.raises(ValueError, match=r"no value for placeholder \{backup\}"):
        fill_template("npm run db:restore -- {backup}", {})


def test_fill_template_rejects_nul() -> None:
    with pytest.raises(ValueError, match="without NUL"):
        fill_template("echo {name}", {"name": "a\0b"})


def test_run_rejects_missing_value() -> None:
    with pytest.raises(ValueError, match="no value for placeholder"):
        run_command("echo {version}", timeout_s=10, redactor=Redactor())


def test_run_rejects_non_positive_timeout() -> None:
    with pytest.raises(ValueError, match="timeout_s must be a positive number"):
        run_command("true", timeout_s=0, redactor=Redactor())


def test_timeout_kills_process_group(pid_file: Path) -> None:
    # The shell starts a child in its own process group; both must die.
    result = run_command(
        f"sleep 60 & echo $! > {pid_file}; wait",
        timeout_s=1,
        redactor=Redactor(),
    )
    child = int(_wait_for_file(pid_file))
    assert result.timed_out
    assert result.exit_code is None
    assert result.error == "timed out after 1 s and was killed"
    assert not _alive(child)


def test_signal_ends_shell_negative_code() -> None:
    result = run_command("kill -TERM $$", timeout_s=10, redactor=Redactor())
    assert result.exit_code == -signal.SIGTERM
    assert not result.timed_out


def _wait_until_dead(pid: int) -> None:
    # Bounded only to keep a broken runner from hanging the suite.
    for _ in range(600):
        if not _alive(pid):
            return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} still alive after 60 s")


def _start_runner(command: str, timeout_s: float) -> subprocess.Popen[bytes]:
    """Start a Python process that runs ``command`` with ``run_command``."""
    script = (
        "from veerunbook.redact import Redactor\n"
        "from veerunbook.shell import run_command\n"
        f"run_command({command!r}, timeout_s={timeout_s!r}, redactor=Redactor())\n"
    )
    return subprocess.Popen([sys.executable, "-c", script])


def test_command_dies_with_its_runner(tmp_path: Path, pid_file: Path) -> None:
    # The runner is killed with SIGKILL, so it cannot clean up. The command must
    # die before it writes the file, though its timeout is far away.
    late = tmp_path / "late"
    runner = _start_runner(f"echo $$ > {pid_file}; sleep 5; touch {late}", 600)
    try:
        shell = int(_wait_for_file(pid_file, attempts=3000))
    finally:
        runner.kill()
        runner.wait()
    _wait_until_dead(shell)
    assert not late.exists()


def test_guard_deadline_bounds_stopped_runner(pid_file: Path) -> None:
    # A stopped runner cannot kill at its deadline; the guard does, a little later.
    runner = _start_runner(f"echo $$ > {pid_file}; exec sleep 600", 1)
    try:
        shell = int(_wait_for_file(pid_file, attempts=3000))
        runner.send_signal(signal.SIGSTOP)
        _wait_until_dead(shell)
    finally:
        runner.kill()
        runner.wait()
    assert not _alive(shell)


def test_timeout_keeps_output_before_kill() -> None:
    result = run_command("echo started; sleep 60", timeout_s=1, redactor=Redactor())
    assert result.timed_out
    assert result.stdout == "started\n"


def test_timeout_bounds_daemonised_grandchild(pid_file: Path) -> None:
    # A process in another session keeps stdout open after the group is killed.
    # The step must still end at the timeout, not when that process exits.
    command = (
        f"setsid sh -c 'echo $$ > {pid_file}; exec sleep 60' & sleep 60; echo done"
    )
    result = run_command(command, timeout_s=1, redactor=Redactor())
    grandchild = int(_wait_for_file(pid_file))
    assert result.timed_out
    assert result.duration_s < 30
    assert "done" not in result.stdout
    assert _alive(grandchild)


def test_background_holder_after_exit(pid_file: Path) -> None:
    # The shell exits at once and leaves a daemon with the pipe open. The exit code
    # counts, and the result notes that reading stopped.
    command = f"echo ready; setsid sh -c 'echo $$ > {pid_file}; exec sleep 60' &"
    result = run_command(command, timeout_s=60, redactor=Redactor())
    assert result.exit_code == 0
    assert not result.timed_out
    assert result.stdout == "ready\n"
    assert result.duration_s < 30
    assert result.note is not None
    assert "kept the output open" in result.note


def test_closed_pipes_still_timed() -> None:
    # Closing both pipes does not end the step; the shell itself is waited for.
    result = run_command("exec >&- 2>&-; sleep 60", timeout_s=1, redactor=Redactor())
    assert result.timed_out
    assert result.exit_code is None


def test_endless_output_still_timed() -> None:
    result = run_command("yes", timeout_s=1, redactor=Redactor())
    assert result.timed_out
    assert len(result.stdout) <= MAX_OUTPUT_CHARS
    assert result.stdout_dropped > 0


def test_output_tail_kept_and_drop_counted() -> None:
    # 100,000 numbered lines of 7 bytes: only the end is kept, from a line start.
    result = run_command("seq 1000000 1099999", timeout_s=30, redactor=Redactor())
    total = 100_000 * 8
    assert result.ok
    assert result.stdout.endswith("1099999\n")
    assert result.stdout.split("\n", 1)[0].isdigit()
    assert len(result.stdout) <= MAX_OUTPUT_CHARS
    assert len(result.stdout) > MAX_OUTPUT_CHARS - 8
    assert result.stdout_dropped + len(result.stdout) == total
    assert result.stderr_dropped == 0


def test_partial_secret_at_cut_dropped() -> None:
    # The cut falls inside a line holding the secret; no piece of it survives.
    filler = MAX_OUTPUT_CHARS - 10
    command = (
        f"printf 'x%.0s' $(seq 1 100); printf '{SECRET}'; "
        f"head -c {filler} /dev/zero | tr '\\0' 'y'; echo; echo end"
    )
    result = run_command(command, timeout_s=30, redactor=Redactor([SECRET]))
    assert result.stdout_dropped > 0
    assert "4242" not in result.stdout
    assert result.stdout.endswith("end\n")


TOKEN = "Sekr3tAdminTok_PLANTED_7781"
# Every 8-character piece of the token: none may survive in the kept output.
TOKEN_PIECES = [TOKEN[start : start + 8] for start in range(len(TOKEN) - 7)]


def _straddling_command(inside: int, line: str, shift: int) -> str:
    """Print output whose kept tail starts ``inside - shift`` bytes into the token.

    ``line`` is ``short`` (the token ends a line of at most 78 bytes) or ``long`` (it
    sits in the middle of a line of over 30,000 bytes). Lines of 39 bytes and ``end``
    follow.
    """
    before, after = (12, 0) if line == "short" else (20_000, 10_000)
    ending = "\\nend\\n"
    # The kept tail is the token from the cut on, the rest of its line with the line
    # feed, the filler and the 5 bytes of the ending.
    filler = MAX_OUTPUT_CHARS - (len(TOKEN) - inside + shift) - after - 1 - 5
    return (
        f"yes {'x' * 38} | head -c 4000; head -c {before} /dev/zero | tr '\\0' a; "
        f"printf %s {TOKEN}; head -c {after} /dev/zero | tr '\\0' b; echo; "
        f"yes {'y' * 38} | head -c {filler}; printf '{ending}'"
    )


# A cut inside a short line, inside a long one, and 1 KiB before a secret in a long
# line: a runner that drops only the first KiB of a cut line leaks there.
@pytest.mark.parametrize(("line", "shift"), [("short", 0), ("long", 0), ("long", 1024)])
@pytest.mark.parametrize("inside", range(len(TOKEN) + 1))
def test_secret_at_cut_never_leaks(inside: int, line: str, shift: int) -> None:
    command = _straddling_command(inside, line, shift)
    result = run_command(command, timeout_s=30, redactor=Redactor([TOKEN]))
    assert result.ok
    assert result.stdout.endswith("\nend\n")
    assert result.stdout_dropped > 0
    for piece in TOKEN_PIECES:
        assert piece not in result.stdout


def test_huge_output_bounded_memory(tmp_path: Path) -> None:
    # 1 GB through the pipe; the measuring process must stay far below that. Its peak
    # is VmHWM, because Linux carries ru_maxrss over from the forking parent (pytest).
    # Alone it peaks near 35 MiB, and under a fully loaded test run near 250 MiB.
    # The limit is half the output, so a runner that kept the whole output fails.
    script = (
        "import json\n"
        "from veerunbook.redact import Redactor\n"
        "from veerunbook.shell import run_command\n"
        "result = run_command('head -c 1000000000 /dev/zero', timeout_s=120,"
        " redactor=Redactor())\n"
        "status = open('/proc/self/status').read().splitlines()\n"
        "peak_kib = [int(l.split()[1]) for l in status if l.startswith('VmHWM:')][0]\n"
        "print(json.dumps({'peak_kib': peak_kib, 'ok': result.ok,"
        " 'kept': len(result.stdout), 'dropped': result.stdout_dropped}))\n"
    )
    measured = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(measured.stdout)
    assert report["ok"]
    assert report["peak_kib"] < 512 * 1024
    assert report["kept"] <= MAX_OUTPUT_CHARS
    assert report["dropped"] + report["kept"] == 1_000_000_000
