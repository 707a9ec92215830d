"""Facts about the machine this process runs on: cores, memory, CPU feature flags, installed packages (read
when asked)."""
from __future__ import annotations

import os
from typing import Optional, Set


def cores() -> int:
    """The logical CPUs this process may run on (its affinity mask: a SLURM job's cores, not the node's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def total_memory() -> Optional[int]:
    """Bytes of physical memory, None when the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def available_memory() -> Optional[int]:
    """Bytes of memory available to a new allocation now (Linux ``MemAvailable``), None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def cpu_flags() -> Set[str]:
    """CPU feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def module_available(name: str) -> bool:
    """True when this Python can import the package ``name`` (found without importing it)."""
    import importlib.util
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
