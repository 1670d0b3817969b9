"""What this CPU is, from /proc/cpuinfo read once: its name, feature flags and physical cores.

Layer 2, standard library only. Where /proc/cpuinfo is missing (not Linux) or hides the
topology (some containers), each answer falls back to what the platform module and the
affinity mask say.
"""

from __future__ import annotations

import functools
import os
import platform


@functools.cache
def _processors() -> tuple[dict[str, str], ...]:
    """One dict of fields per processor block of /proc/cpuinfo (empty when unreadable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return ()
    blocks = []
    for block in text.split("\n\n"):
        fields = dict(line.partition(":")[::2] for line in block.splitlines() if ":" in line)
        if fields:
            blocks.append({k.strip(): v.strip() for k, v in fields.items()})
    return tuple(blocks)


def name() -> str:
    """The CPU's model name (for benchmark reports)."""
    for block in _processors()[:1]:
        if block.get("model name"):
            return block["model name"]
    return platform.processor() or platform.machine()


def flags() -> str:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``): part of the kernel's cache key,
    since it is built with -march=native."""
    for block in _processors()[:1]:
        found = block.get("flags") or block.get("Features")
        if found:
            return found
    return platform.processor() or platform.machine()


def physical_cores() -> int:
    """The physical cores this process may run on (SMT siblings count once).

    The (physical id, core id) pairs of the CPUs in our affinity mask; where /proc/cpuinfo has
    none, the affinity count itself.
    """
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        allowed = set(range(os.cpu_count() or 1))
    cores = set()
    for block in _processors():
        processor = block.get("processor", "")
        if processor.isdigit() and int(processor) in allowed and "core id" in block:
            cores.add((block.get("physical id", "0"), block["core id"]))
    return max(1, min(len(cores) or len(allowed), len(allowed)))


def process_age() -> float | None:
    """Seconds since this process started (from /proc; None where that is not available).

    ``time.perf_counter`` starts counting only when Python is up; this includes the
    interpreter's own start-up and every import, as a user waiting for the first step feels it.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return uptime - started / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
