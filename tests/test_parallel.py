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
