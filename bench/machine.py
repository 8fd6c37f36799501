"""Facts about the machine and the software a benchmark ran on, for the JSON record."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "veerunbook",
    "papermill",
    "nbclient",
    "nbformat",
    "jupyter_client",
    "ipykernel",
    "pyzmq",
    "httpx",
    "pandas",
    "matplotlib",
    "prometheus-client",
    "starlette",
    "uvicorn",
    "psutil",
    "psycopg",
)


def machine_facts() -> dict[str, object]:
    """Return the CPU model and count, total memory, OS, Python and package versions."""
    cpuinfo = _read("/proc/cpuinfo")
    models = [
        line.split(":", 1)[1].strip()
        for line in cpuinfo.splitlines()
        if line.startswith("model name")
    ]
    processors = sum(1 for line in cpuinfo.splitlines() if line.startswith("processor"))
    return {
        "cpu_model": models[0] if models else platform.processor(),
        "cpu_count": processors or os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_total_mb": _memory_total_kib() * 1024 // 1_000_000,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _memory_total_kib() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
