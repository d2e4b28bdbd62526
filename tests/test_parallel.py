import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asdlib.parallel import ParallelSettings, parallel_map


def square(x):
    return x * x


@pytest.mark.parametrize("backend,n_jobs", [("sequential", 1), ("loky", 1), ("loky", 2)])
def test_ordered_results(backend, n_jobs):
    items = iter(range(20))  # a generator: consumed lazily
    out = list(parallel_map(square, items, ParallelSettings(backend=backend, n_jobs=n_jobs)))
    assert out == [i * i for i in range(20)]


def test_dask_local_cluster():
    pytest.importorskip("dask.distributed")
    out = list(parallel_map(square, range(10), ParallelSettings(backend="dask", n_jobs=2)))
    assert out == [i * i for i in range(10)]


def test_settings_validation():
    with pytest.raises(ValueError, match="n_jobs"):
        ParallelSettings(n_jobs=0)
    with pytest.raises(ValueError, match="scheduler"):
        ParallelSettings(backend="loky", scheduler="tcp://x:1")


@pytest.mark.skipif(not shutil.which("taskset") or len(os.sched_getaffinity(0)) < 2, reason="needs taskset, 2 cores")
def test_all_cores_means_the_cores_this_process_may_use():
    code = "from asdlib.parallel import ParallelSettings; print(ParallelSettings(n_jobs=-1).workers())"
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "1"
