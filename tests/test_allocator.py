"""asdlib.allocator: freed memory is reused (fewer page faults), children inherit it, user settings stand."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from asdlib.allocator import ENVIRONMENT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                reason="glibc's allocator only")

# Allocates and frees 64 MB with malloc 20 times, writing every page (as PyTorch's CPU
# allocator does; NumPy asks for huge pages itself), and prints whether the allocator was
# changed, the minor page faults of the loop and what a child process sees.
SNIPPET = """
import ctypes, os, resource, subprocess, sys
from asdlib.allocator import keep_freed_memory
changed = keep_freed_memory() if sys.argv[1] == "keep" else False
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
size = 64_000_000
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
child = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('MALLOC_MMAP_MAX_'))"],
                       capture_output=True, text=True, check=True).stdout.strip()
print(changed, faults, child)
"""


def _run(mode: str, **extra_env: str) -> tuple[bool, int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
    result = subprocess.run([sys.executable, "-c", SNIPPET, mode], env={**env, **extra_env},
                            capture_output=True, text=True, check=True)
    changed, faults, child = result.stdout.split()
    return changed == "True", int(faults), child


def test_kept_memory_is_reused_instead_of_faulted_in_again() -> None:
    changed, kept_faults, child = _run("keep")
    _, default_faults, default_child = _run("default")
    assert changed
    # by default each 64 MB array is a fresh mapping (~15600 pages faulted in, 20 times)
    assert default_faults > 200_000
    assert kept_faults < default_faults / 5
    assert child == ENVIRONMENT["MALLOC_MMAP_MAX_"] and default_child == "None"


def test_a_users_own_malloc_setting_is_left_alone() -> None:
    changed, _, child = _run("keep", MALLOC_MMAP_MAX_="7")
    assert not changed
    assert child == "7"
