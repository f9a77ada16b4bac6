"""Resident-set-size readers shared by the memory child scripts (stdlib only, no psutil)."""

import resource
import sys


def current_rss_bytes() -> int:
    """RSS now, from /proc on Linux; falls back to the peak where /proc is missing."""
    try:
        with open("/proc/self/statm") as statm:
            resident_pages = int(statm.read().split()[1])
        return resident_pages * resource.getpagesize()
    except OSError:
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Peak RSS of this process image.

    On Linux, VmHWM from /proc: ``ru_maxrss`` survives fork+exec, so a child started by a big
    parent would report the parent's peak. Elsewhere ``ru_maxrss`` is the best there is.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes; Linux: KiB
