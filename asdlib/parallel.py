"""Ordered, streaming parallel map over joblib (loky locally, Dask for scale-out).

Workers return results; only the calling process writes files. Items are
consumed lazily and results come back in input order as they finish, so memory
stays bounded by a few batches whatever the corpus size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Literal, TypeVar

import joblib

from asdlib.progress import progress_bar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ParallelSettings:
    """How a stage spreads independent work items.

    backend: ``loky`` (processes on this machine), ``dask`` (a Dask cluster: the
    one at ``scheduler``, e.g. ``tcp://10.0.0.5:8786``, or a local one when it
    is empty), or ``sequential`` (in-process, for debugging).
    n_jobs: worker count for loky / a local Dask cluster; -1 means all cores.
    """

    backend: Literal["loky", "dask", "sequential"] = "loky"
    n_jobs: int = -1
    scheduler: str = ""

    def __post_init__(self) -> None:
        if self.n_jobs == 0 or self.n_jobs < -1:
            raise ValueError(f"n_jobs must be -1 or a positive integer, got {self.n_jobs}")
        if self.scheduler and self.backend != "dask":
            raise ValueError("scheduler is only used with backend: dask")

    def workers(self) -> int:
        """Number of local workers this setting asks for."""
        return usable_cores() if self.n_jobs == -1 else self.n_jobs


def usable_cores() -> int:
    """Cores this process may use: its CPU affinity and container quota, not the machine's count
    (``taskset`` or a cgroup limit would otherwise oversubscribe)."""
    return joblib.cpu_count()


def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    settings: ParallelSettings = ParallelSettings(),
    *,
    desc: str = "",
    total: int | None = None,
) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in order, computed by the chosen backend, with a
    progress bar (see :mod:`asdlib.progress`)."""
    progress = dict(desc=desc, total=total, unit="item")
    if settings.backend == "sequential" or (settings.backend == "loky" and settings.workers() == 1):
        yield from progress_bar((fn(item) for item in items), **progress)
        return
    if settings.backend == "dask":
        yield from _dask_map(fn, items, settings, progress)
        return
    runner = joblib.Parallel(n_jobs=settings.workers(), backend="loky", return_as="generator",
                             pre_dispatch="2*n_jobs")
    yield from progress_bar(runner(joblib.delayed(fn)(item) for item in items), **progress)


def _dask_map(fn: Callable[[T], R], items: Iterable[T], settings: ParallelSettings,
              progress: dict) -> Iterator[R]:
    from dask.distributed import Client, LocalCluster

    if settings.scheduler:
        client = Client(settings.scheduler)
        cluster = None
    else:
        cluster = LocalCluster(n_workers=settings.workers(), threads_per_worker=1,
                               processes=True, dashboard_address=":0")
        client = Client(cluster)
    try:
        with joblib.parallel_config(backend="dask"):
            runner = joblib.Parallel(return_as="generator", pre_dispatch="2*n_jobs")
            yield from progress_bar(runner(joblib.delayed(fn)(item) for item in items), **progress)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
