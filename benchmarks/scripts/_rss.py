"""Resident-set-size readers shared by the memory child scripts (stdlib only, no psutil)."""

import gc
import resource
import sys
import time
from collections.abc import Callable


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


def reset_peak_rss() -> bool:
    """Make the peak RSS start again from the RSS now, so a later `peak_rss_bytes` is the peak
    of what ran in between, not of imports or a warm-up. Linux only (``clear_refs`` 5, since
    4.0); False where it cannot, and the peak then includes everything before."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def measure_run(run: Callable[[], object]) -> dict[str, float]:
    """Call ``run`` once; its wall time, and this process's RSS before, at peak and after.

    The peak is reset first where Linux allows (``peak_reset`` 1), so it belongs to ``run``
    alone; elsewhere it is the process's lifetime peak and may overstate the run's growth.
    """
    gc.collect()
    reset = reset_peak_rss()
    before = current_rss_bytes()
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rss_before_bytes": before,
        "peak_rss_bytes": peak_rss_bytes(),
        "rss_after_bytes": current_rss_bytes(),
        "peak_reset": float(reset),
    }
