"""Ordered, streaming parallel map: joblib's loky locally, a Dask cluster for scale-out.

Workers return results; only the calling process writes files. Items are
consumed lazily and results come back in input order as they finish, so memory
stays bounded by a few items per worker whatever the corpus size.

On Dask, before any work is sent, every worker must import the code to run
(``fn``'s package and :mod:`asdlib`) from files with the same bytes as this
process: a worker started from another checkout would silently compute other
results. A cluster that has had no workers for :data:`NO_WORKERS_GRACE_S` (all
killed, or none started) ends the map with an error instead of a silent wait.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import re
import sys
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Literal, TypeVar

import joblib

from asdlib.progress import progress_bar

if TYPE_CHECKING:
    from distributed import Client, Future

T = TypeVar("T")
R = TypeVar("R")

NO_WORKERS_GRACE_S = 60.0
"""Seconds a Dask cluster may have no workers before :func:`parallel_map` gives up on it: time
for a restarted worker to come back, while a run whose workers all died still ends."""
POLL_S = 1.0
"""Seconds between checks of a Dask cluster's workers while a result is awaited."""
IN_FLIGHT_PER_THREAD = 2
"""Items submitted ahead per Dask worker thread: workers never idle, memory stays bounded."""

_SCHEDULER_ADDRESS = re.compile(r"(?:(?:tcp|tls|ws|wss)://)?(?:\[[0-9A-Fa-f:.]+\]|[\w.-]+):(?P<port>\d{1,5})")


class ClusterError(OSError):
    """A Dask cluster cannot do the work: unreachable, without workers, or running other code."""


@dataclass(frozen=True)
class ParallelSettings:
    """How a stage spreads independent work items.

    backend: ``loky`` (processes on this machine), ``dask`` (a Dask cluster: the
    one at ``scheduler``, ``[tcp|tls|ws|wss://]host:port`` e.g. ``tcp://10.0.0.5:8786``,
    or a local one when it is empty), or ``sequential`` (in-process, for debugging).
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
        if self.scheduler:
            _check_scheduler_address(self.scheduler)

    def workers(self) -> int:
        """Number of local workers this setting asks for."""
        return usable_cores() if self.n_jobs == -1 else self.n_jobs


def _check_scheduler_address(address: str) -> None:
    """Refuse an address that is not ``[scheme://]host:port`` of a remote Dask scheduler, when the
    settings are read rather than with distributed's cryptic errors at connection time."""
    match = _SCHEDULER_ADDRESS.fullmatch(address)
    if not match or not 1 <= int(match["port"]) <= 65535:
        raise ValueError(f"scheduler must be a Dask scheduler address [tcp|tls|ws|wss://]host:port "
                         f"with a port from 1 to 65535, e.g. tcp://10.0.0.5:8786, got {address!r}")


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
        with _dask_client(settings) as (client, where):
            watch = _WorkerWatch(client, where)
            watch.wait_for_workers()
            _check_same_code(client, fn)  # on the workers there now; later ones are not checked
            yield from progress_bar(_dask_results(client, fn, items, watch), **progress)
        return
    runner = joblib.Parallel(n_jobs=settings.workers(), backend="loky", return_as="generator",
                             pre_dispatch="2*n_jobs")
    yield from progress_bar(runner(joblib.delayed(fn)(item) for item in items), **progress)


@contextmanager
def _dask_client(settings: ParallelSettings) -> Iterator[tuple[Client, str]]:
    """A client of the cluster at ``settings.scheduler`` (or of a local one of ``settings.workers()``
    processes) and the cluster's name for messages; distributed's INFO lines stay out of the log."""
    from distributed import Client, LocalCluster

    with _quiet_logger("distributed", logging.WARNING):
        if not settings.scheduler:
            with LocalCluster(n_workers=settings.workers(), threads_per_worker=1, processes=True,
                              dashboard_address=":0") as cluster, Client(cluster) as client:
                yield client, "the local Dask cluster"
            return
        try:
            client = Client(settings.scheduler)
        except OSError as exc:  # refused, timed out, unknown host
            raise ClusterError(f"cannot reach the Dask scheduler at {settings.scheduler} "
                               f"(setting parallel.scheduler): {exc}") from exc
        with client:
            yield client, f"the Dask scheduler at {settings.scheduler}"


@contextmanager
def _quiet_logger(name: str, level: int) -> Iterator[None]:
    """Within this block, logger ``name`` passes on only records of ``level`` and above."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


class _WorkerWatch:
    """Counts a Dask cluster's worker threads, and gives up on a cluster that has had none for
    :data:`NO_WORKERS_GRACE_S`: tasks would otherwise wait for a worker forever."""

    def __init__(self, client: Client, where: str) -> None:
        self.client = client
        self.where = where
        self.none_since: float | None = None

    def threads(self) -> int:
        """Worker threads the cluster has now; raises :class:`ClusterError` past the grace period."""
        threads = sum(self.client.nthreads().values())
        if threads:
            self.none_since = None
        elif self.none_since is None:
            self.none_since = time.monotonic()
        elif time.monotonic() - self.none_since >= NO_WORKERS_GRACE_S:
            raise ClusterError(f"{self.where} has had no workers for {NO_WORKERS_GRACE_S:g} s: they "
                               f"are gone (killed or crashed) or were never started")
        return threads

    def wait_for_workers(self) -> None:
        """Return once the cluster has a worker (its workers may still be starting)."""
        while not self.threads():
            time.sleep(POLL_S)

    def in_flight(self) -> int:
        """How many items to keep submitted: :data:`IN_FLIGHT_PER_THREAD` per worker thread, and
        some while there are none, so that the wait for a result notices the grace period end."""
        return IN_FLIGHT_PER_THREAD * max(self.threads(), 1)


def _dask_results(client: Client, fn: Callable[[T], R], items: Iterable[T], watch: _WorkerWatch) -> Iterator[R]:
    """``fn(item)`` for each item, computed on the cluster and yielded in input order; items are
    submitted lazily, :data:`IN_FLIGHT_PER_THREAD` per worker thread ahead of the one awaited."""
    items = iter(items)
    pending: deque[Future] = deque()
    in_flight = watch.in_flight()
    while True:
        pending.extend(client.submit(fn, item, pure=False) for item in islice(items, in_flight - len(pending)))
        if not pending:
            return
        head = pending.popleft()
        while not _finished(head):
            in_flight = watch.in_flight()
        yield head.result()


def _finished(future: Future) -> bool:
    """Whether ``future`` finished (or failed) within :data:`POLL_S`: a short wait, so that the
    caller checks the workers in between."""
    from distributed import wait

    try:
        wait(future, timeout=POLL_S)
    except TimeoutError:
        return False
    return True


def _check_same_code(client: Client, fn: Callable) -> None:
    """Raise :class:`ClusterError` unless every worker imports the modules ``fn`` runs with from
    files with the same bytes as here; checked by content, so a shared checkout at another path
    passes."""
    names = _code_modules(fn)
    here = _source_digests(names)
    for worker, there in sorted(client.run(_source_digests, names, on_error="return").items()):
        if isinstance(there, Exception):
            problem = f"it cannot run this checkout's code ({there})"
        elif (name := _first_difference(here, there)) is None:
            continue
        elif not there[name]:
            problem = f"it cannot import module {name}"
        else:
            problem = f"its module {name} has other bytes than {_source_file(name)}"
        raise ClusterError(f"Dask worker {worker} would run other code: {problem}; start every worker "
                           f"in this checkout with PYTHONPATH={_checkout()}")


def _code_modules(fn: Callable) -> list[str]:
    """Names of the modules whose code a worker runs for ``fn``: its own module and every module
    loaded here of its top-level package and of asdlib (a script's ``__main__`` travels by value)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    module = getattr(fn, "__module__", None) or "asdlib"  # no module of its own: asdlib's only
    if module == "__main__":  # run as ``python -m stages.x``: stages.x; a script: asdlib's only
        spec = sys.modules["__main__"].__spec__
        module = spec.name if spec is not None else "asdlib"
    packages = {module.partition(".")[0], "asdlib"}
    loaded = {name for name in list(sys.modules) if name.partition(".")[0] in packages}
    return sorted(loaded | {module})


def _source_digests(names: list[str]) -> dict[str, str]:
    """sha256 of the file each named module is (or would be) imported from in this process, ''
    for one that cannot be imported. Runs on the workers too; it executes no module but the parent
    packages of those named (finding a submodule imports its package)."""
    digests = {}
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):  # a missing parent package; a module without a spec
            spec = None
        if spec is None:
            digests[name] = ""
        elif spec.has_location and spec.origin:
            digests[name] = hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()
        else:  # built in, or a namespace package: nothing to read
            digests[name] = str(spec.origin)
    return digests


def _first_difference(here: dict[str, str], there: dict[str, str]) -> str | None:
    """The first module whose digest differs between two :func:`_source_digests`, or None."""
    return next((name for name, digest in here.items() if there.get(name) != digest), None)


def _source_file(name: str) -> str:
    """The file module ``name`` is imported from here."""
    spec = importlib.util.find_spec(name)
    return str(spec.origin if spec is not None else name)


def _checkout() -> Path:
    """The folder this process imports asdlib from: what the workers need on their PYTHONPATH."""
    return Path(_source_file("asdlib")).parent.parent
