"""Bounded runs of the shell commands that a target's configuration names.

A target's ``[targets.NAME.commands]`` contains shell commands the team already has,
such as ``npm run deploy:rollback -- {version}``. ``run_command`` fills the
placeholders with shell-quoted values, runs the result with ``/bin/sh -c`` in a new
process group, and returns a ``CommandResult`` with the exit code and the end of each
output stream, masked. It never raises for the command's own failure.

The shell runs under ``veerunbook.shell_guard``, a small supervisor in the same
process group that kills the group when this process dies, so a command never
outlives the kernel that started it.

The timeout bounds the whole step. The pipes are read here with a deadline instead of
``subprocess.communicate``, because communicate waits for end-of-file, and a process
that left the group (``setsid daemon &``) can keep a pipe open for ever. At the
deadline the process group is killed and reading stops, whoever still holds the
pipes. Only the last ``MAX_OUTPUT_CHARS`` bytes of each stream are kept while
reading, so a command that prints gigabytes costs no memory. When the start of a
stream was dropped, the text kept starts at the first whole line after the cut, and
the result counts the bytes dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from veerunbook.redact import Redactor
from veerunbook.shell_guard import guard_command

if TYPE_CHECKING:
    from veerunbook.session import Session

_log = logging.getLogger("veerunbook.shell")

# Output kept of each stream: the end, where tools print their summary.
MAX_OUTPUT_CHARS = 16_000
# After the shell exits, background processes it started may still hold the pipes;
# their output is read for this long at most.
EXIT_GRACE_SECONDS = 0.5
# A process killed with SIGKILL is reaped within this time, unless it is in an
# uninterruptible wait inside the kernel.
REAP_SECONDS = 5.0
READ_CHUNK_BYTES = 1 << 16
# Chunks read after the kill at most: what the pipes buffered, not a writer that keeps
# going in another session.
DRAIN_CHUNKS = 16

# ``{name}`` with a lowercase name. Shell expansions such as ``${HOME}`` and other
# braces (``awk '{print $1}'``) are left alone.
_PLACEHOLDER = re.compile(r"(?<!\$)\{([a-z][a-z0-9_]*)\}")


@dataclass(frozen=True)
class CommandResult:
    """A finished, killed or unstartable command, with every text masked.

    ``exit_code`` is None when the command could not start or was killed at the
    timeout, and -N when signal N ended the shell. ``stdout`` and ``stderr`` are the
    ends of the streams, and ``stdout_dropped`` and ``stderr_dropped`` count the
    bytes left out before them.
    ``error`` gives the reason the command did not run to its end, and ``note``
    reports a background process that kept the output open after the command exited.
    """

    command: str
    exit_code: int | None
    duration_s: float
    timed_out: bool
    stdout: str
    stderr: str
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    error: str | None = None
    note: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the command ran to its end and exited 0."""
        return self.exit_code == 0 and not self.timed_out

    def summary(self) -> str:
        """Describe the result in one line, such as ``exited 0 in 1.2 s``."""
        if self.error:
            return self.error
        return f"exited {self.exit_code} in {self.duration_s:g} s"

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON values, for the journal."""
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "duration_s": self.duration_s,
            "timed_out": self.timed_out,
            "error": self.error,
            "note": self.note,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "stdout_dropped": self.stdout_dropped,
            "stderr_dropped": self.stderr_dropped,
        }


def placeholders(template: str) -> list[str]:
    """Return the placeholder names of ``template`` in order of appearance."""
    return [match.group(1) for match in _PLACEHOLDER.finditer(template)]


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """Replace each ``{name}`` with the shell-quoted value of ``name``.

    A value always stays one argument: ``1.4.1; rm -rf /`` becomes
    ``'1.4.1; rm -rf /'``. Raises ValueError for a placeholder without a value or a
    value that contains a NUL byte, which no process argument can carry.
    """
    missing = sorted({name for name in placeholders(template) if name not in values})
    if missing:
        raise ValueError(
            f"no value for placeholder {{{missing[0]}}} of the command template; "
            f"give values for: {', '.join(missing)}"
        )
    for name, value in values.items():
        if not isinstance(value, str) or "\0" in value:
            raise ValueError(f"invalid value for {{{name}}}: give text without NUL")
    return _PLACEHOLDER.sub(lambda match: shlex.quote(values[match.group(1)]), template)


def configured_command(session: Session, key: str) -> str | None:
    """Return the target's command for role ``key``, or None when none is set."""
    return session.target.commands.get(key) or None


def run_command(
    template: str,
    *,
    values: Mapping[str, str] | None = None,
    timeout_s: float,
    redactor: Redactor,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Fill ``template`` and run it with ``/bin/sh -c``, bounded by ``timeout_s``.

    The environment is this process's, because the command needs the database URL
    and token variables as the application does. ``env`` adds variables for this
    child only, such as a ``PGPASSWORD`` that must stay off the command line. Add
    their secret values to ``redactor`` first. Raises ValueError for a template
    that cannot be filled (see ``fill_template``) or a non-positive timeout; every
    failure of the command itself is a result.
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be a positive number, not {timeout_s!r}")
    command = fill_template(template, values or {})
    masked = redactor.mask(command)
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            guard_command(os.getpid(), timeout_s, ["/bin/sh", "-c", command]),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=None if env is None else {**os.environ, **env},
            start_new_session=True,
        )
    except OSError as exc:
        reason = redactor.mask(f"cannot start: {exc.strerror or exc}")
        _log.warning("command %s %s", masked, reason)
        return CommandResult(masked, None, 0.0, False, "", "", error=reason)

    streams = _collect(process, started + timeout_s)
    duration = round(time.monotonic() - started, 3)
    error = None
    if streams.timed_out:
        error = f"timed out after {timeout_s:g} s and was killed"
        _log.warning("command %s timed out after %g s", masked, timeout_s)
    result = _result(masked, process, streams, duration, redactor, error)
    _log.info("command %s: %s", masked, result.summary())
    return result


class _Tail:
    """The last ``MAX_OUTPUT_CHARS`` bytes of a stream and the count of the others."""

    def __init__(self) -> None:
        self.kept = bytearray()
        self.dropped = 0
        # Whether the last byte dropped ended a line, so the kept bytes start one.
        self.starts_line = True

    def add(self, chunk: bytes) -> None:
        self.kept += chunk
        excess = len(self.kept) - MAX_OUTPUT_CHARS
        if excess > 0:
            self.starts_line = self.kept[excess - 1] == ord("\n")
            del self.kept[:excess]
            self.dropped += excess

    def text(self, redactor: Redactor) -> tuple[str, int]:
        """Return the kept text masked, and the number of bytes dropped."""
        kept, dropped = bytes(self.kept), self.dropped
        if not self.starts_line:
            # The kept bytes may start inside a secret, a URL password or a base64
            # blob, and masking recognises each of them only whole. So the rest of
            # the cut line is dropped, whatever its length. Masking the stream
            # before cutting it, with an overlap as long as the longest secret,
            # would still miss a cut blob, whose decoding needs all of it.
            # NOTE: a secret that spans lines, such as a PEM key, can still leave
            # its lines after the cut unmasked.
            newline = kept.find(b"\n")
            cut = len(kept) if newline < 0 else newline + 1
            kept, dropped = kept[cut:], dropped + cut
        return redactor.mask(kept.decode("utf-8", "replace")), dropped


@dataclass
class _Streams:
    """The output ``_collect`` read, and whether the deadline ended the command."""

    stdout: _Tail
    stderr: _Tail
    timed_out: bool = False
    left_open: bool = False


def _collect(process: subprocess.Popen[bytes], deadline: float) -> _Streams:
    """Read both pipes until they close, the grace after exit ends, or the deadline."""
    streams = _Streams(_Tail(), _Tail())
    pipes = [(process.stdout, streams.stdout), (process.stderr, streams.stderr)]
    selector = selectors.DefaultSelector()
    try:
        for pipe, tail in pipes:
            assert pipe is not None  # both streams are opened with PIPE
            os.set_blocking(pipe.fileno(), False)
            selector.register(pipe.fileno(), selectors.EVENT_READ, tail)
        _read_until(process, selector, deadline, streams)
    except BaseException:
        _kill_group(process)
        raise
    finally:
        selector.close()
        for pipe, _ in pipes:
            if pipe is not None:
                pipe.close()
    return streams


def _read_until(
    process: subprocess.Popen[bytes],
    selector: selectors.BaseSelector,
    deadline: float,
    streams: _Streams,
) -> None:
    exit_deadline: float | None = None
    while selector.get_map():
        now = time.monotonic()
        if exit_deadline is None and process.poll() is not None:
            exit_deadline = min(deadline, now + EXIT_GRACE_SECONDS)
        limit = deadline if exit_deadline is None else exit_deadline
        if now >= limit:
            break
        # One chunk per ready pipe and turn, so a stream that never pauses cannot
        # keep the loop from looking at the clock.
        for key, _ in selector.select(min(limit - now, 0.1)):
            _read_chunk(key, selector)
    if selector.get_map() and exit_deadline is not None:
        streams.left_open = True

    # The pipes are closed or a limit passed. Wait for the shell within the deadline.
    if process.poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.0, deadline - time.monotonic()))
    if process.poll() is None:
        streams.timed_out = True
        _kill_group(process)
        # Read what is buffered in the pipes now, but do not wait for end-of-file:
        # a process in another session may keep them open.
        for _ in range(DRAIN_CHUNKS):
            ready = selector.select(0)
            if not ready:
                break
            for key, _ in ready:
                _read_chunk(key, selector)


def _read_chunk(key: selectors.SelectorKey, selector: selectors.BaseSelector) -> None:
    tail: _Tail = key.data
    try:
        chunk = os.read(key.fd, READ_CHUNK_BYTES)
    except BlockingIOError:
        return
    if chunk:
        tail.add(chunk)
    else:
        selector.unregister(key.fd)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    # The guard, the shell and the shell's children (npm, node) share one group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        process.wait(REAP_SECONDS)
    except subprocess.TimeoutExpired:
        _log.warning(
            "process %d not reaped %g s after SIGKILL", process.pid, REAP_SECONDS
        )


def _result(
    masked: str,
    process: subprocess.Popen[bytes],
    streams: _Streams,
    duration: float,
    redactor: Redactor,
    error: str | None,
) -> CommandResult:
    stdout, stdout_dropped = streams.stdout.text(redactor)
    stderr, stderr_dropped = streams.stderr.text(redactor)
    note = None
    if streams.left_open:
        note = (
            "a background process kept the output open after the command exited; "
            f"its output after {EXIT_GRACE_SECONDS:g} s was not read"
        )
    return CommandResult(
        masked,
        None if streams.timed_out else process.returncode,
        duration,
        streams.timed_out,
        stdout,
        stderr,
        stdout_dropped,
        stderr_dropped,
        error=error,
        note=note,
    )
