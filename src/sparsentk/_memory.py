"""Refuse requests whose arrays cannot fit, before allocating them (one clear error instead of a MemoryError)."""

from __future__ import annotations

import math
import os


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (None when unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def format_bytes(nbytes: float) -> str:
    """``nbytes`` in binary units, e.g. ``"7.28 TiB"``."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
    k = min(int(math.log(max(float(nbytes), 1.0), 1024)), len(units) - 1)
    return f"{nbytes / 1024**k:.3g} {units[k]}"


def require_memory(nbytes: float, name: str, what: str) -> None:
    """Raise ``ValueError`` naming ``name`` when ``what`` needs more than the machine's physical memory."""
    total = physical_memory()
    if total is not None and nbytes > total:
        raise ValueError(f"{name}: {what} needs {format_bytes(nbytes)} of memory; this machine has "
                         f"{format_bytes(total)}")
