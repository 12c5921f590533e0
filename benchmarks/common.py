"""Helpers the benchmark scripts share: process memory, latency summaries, the machine a run was on."""

from __future__ import annotations

import os
import platform
from importlib.metadata import version
from pathlib import Path

import numpy as np


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """Peak resident memory of this process, from VmHWM.

    Not getrusage: on Linux its ru_maxrss survives fork and exec, so a fresh
    worker would report its parent's peak.
    """
    return _status_mb("VmHWM")


def rss_mb() -> float:
    """Resident memory of this process now (VmRSS), for before/after differences."""
    return _status_mb("VmRSS")


def latency_stats(samples_ms: list[float]) -> dict[str, float]:
    """Median and 95th percentile of latency samples in milliseconds."""
    return {
        "median_ms": round(float(np.median(samples_ms)), 3),
        "p95_ms": round(float(np.percentile(samples_ms, 95)), 3),
    }


def milvus_machine(note: str) -> dict[str, object]:
    """The machine and Milvus client versions of a milvus-lite run, with a note on how to read it."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "pymilvus": version("pymilvus"),
        "milvus_lite": version("milvus-lite"),
        "note": note,
    }
