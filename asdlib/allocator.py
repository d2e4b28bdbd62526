"""Keep freed memory in the process for reuse instead of handing it back to the kernel (glibc).

PyTorch's and NumPy's CPU arrays come from ``malloc``. By default glibc serves a large
request (over 128 KiB, a threshold that adapts up to 32 MiB) with a fresh ``mmap`` and
unmaps it on ``free``, and gives the top of its heap back once over 128 KiB of it is
free. A training step allocates and frees the same large activations every time, so
every step maps them anew and the kernel zero-fills each page again on first touch.
On a virtual machine such page faults are dear: on this project's 2-core machine one
STgram-MFN step on 32 ten-second clips (2 threads) took 10.5 s with 10.3 s of CPU time in
the kernel (2.1 million page faults), and 3.9-4.3 s with freed memory kept (forward and
backward alone: 10.6 -> 3.4 s, ``benchmarks/bench_models.py`` with and without
``--default-malloc``). The cost: a process keeps the memory of its peak until it exits.
"""

from __future__ import annotations

import ctypes
import os
import sys

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# What child processes (loky and local Dask workers) read at start-up: no mmap'd chunks,
# never trim (1 TiB of free heap is never reached).
ENVIRONMENT = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}


def keep_freed_memory() -> bool:
    """Make this process and the processes it starts later reuse freed memory.

    Sets glibc's ``M_MMAP_MAX`` to 0 and turns heap trimming off in this process, and
    the matching ``MALLOC_*`` variables for its children. Does nothing where the C library
    is not glibc, or where the user set either variable (their choice stands). Returns
    whether this process's allocator was changed.
    """
    if any(name in os.environ for name in ENVIRONMENT) or not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return False  # musl and other C libraries: their allocators differ
    # mallopt returns 1 on success; a trim threshold of -1 turns trimming off (mallopt(3))
    changed = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, -1) == 1
    if changed:
        os.environ.update(ENVIRONMENT)
    return changed
