import importlib.util
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asdlib import parallel
from asdlib.config import ConfigError, parse
from asdlib.parallel import ParallelSettings, parallel_map


def square(x):
    return x * x


def pid_after(seconds):
    time.sleep(seconds)
    return os.getpid()


@pytest.mark.parametrize("backend,n_jobs", [("sequential", 1), ("loky", 1), ("loky", 2)])
def test_ordered_results(backend, n_jobs):
    items = iter(range(20))  # a generator: consumed lazily
    out = list(parallel_map(square, items, ParallelSettings(backend=backend, n_jobs=n_jobs)))
    assert out == [i * i for i in range(20)]


def test_dask_local_cluster(caplog):
    """Ordered results, and none of distributed's INFO lines in a log set to INFO (stages' setting)."""
    pytest.importorskip("dask.distributed")
    caplog.set_level(logging.INFO)
    level = logging.getLogger("distributed").level
    out = list(parallel_map(square, range(10), ParallelSettings(backend="dask", n_jobs=2)))
    assert out == [i * i for i in range(10)]
    chatter = [r for r in caplog.records if r.name.startswith("distributed") and r.levelno < logging.WARNING]
    assert [r.getMessage() for r in chatter] == []
    assert logging.getLogger("distributed").level == level


@pytest.fixture
def tcp_cluster():
    """An in-process Dask cluster of one worker thread, reached by a tcp:// address as a remote one."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                                  dashboard_address=":0") as cluster:
        yield cluster


def remote(cluster):
    """Settings that reach ``cluster`` through its scheduler address, as params.yaml would."""
    return ParallelSettings(backend="dask", scheduler=cluster.scheduler_address)


@pytest.fixture
def short_grace(monkeypatch):
    monkeypatch.setattr(parallel, "NO_WORKERS_GRACE_S", 0.5)
    monkeypatch.setattr(parallel, "POLL_S", 0.1)


def test_dask_map_ends_when_the_workers_are_gone(tcp_cluster, short_grace):
    """Workers gone mid-run end the map with an error naming the scheduler, not a wait forever."""
    results = parallel_map(pid_after, [0.05] * 20, remote(tcp_cluster))
    next(results)
    tcp_cluster.scale(0)
    with pytest.raises(OSError, match=re.escape(f"the Dask scheduler at {tcp_cluster.scheduler_address} has had "
                                                f"no workers for 0.5 s")):
        list(results)


def test_dask_map_without_workers_says_so(tcp_cluster, short_grace):
    tcp_cluster.scale(0)
    with pytest.raises(OSError, match="has had no workers for 0.5 s"):
        list(parallel_map(square, range(3), remote(tcp_cluster)))


def test_unreachable_scheduler_names_the_setting():
    dask = pytest.importorskip("dask")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    expected = re.escape(f"cannot reach the Dask scheduler at {address} (setting parallel.scheduler): ")
    with dask.config.set({"distributed.comm.timeouts.connect": "0.5s"}), pytest.raises(OSError, match=expected):
        list(parallel_map(square, range(3), ParallelSettings(backend="dask", scheduler=address)))


def test_dask_workers_must_import_the_same_code(tmp_path, monkeypatch):
    """Before any work: a worker that imports fn's module from other bytes, or cannot import it, is
    named; one with this code computes every item itself (even as the cluster's only thread)."""
    distributed = pytest.importorskip("distributed")
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    for folder, sign in ((theirs, "-"), (ours, "")):
        folder.mkdir()
        (folder / "asd_probe_other.py").write_text(f"def f(x):\n    return {sign}x\n")
    (ours / "asd_probe_missing.py").write_text("def f(x):\n    return x\n")
    monkeypatch.syspath_prepend(theirs)  # the worker processes start with this path
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        monkeypatch.syspath_prepend(ours)  # this process imports from ours first
        settings = remote(cluster)
        assert os.getpid() not in set(parallel_map(pid_after, [0, 0], settings))
        with pytest.raises(OSError, match=f"Dask worker tcp://.*: its module asd_probe_other has other bytes than "
                                          f"{ours / 'asd_probe_other.py'}; start every worker in this checkout "
                                          f"with PYTHONPATH="):
            list(parallel_map(probe(ours / "asd_probe_other.py").f, [1], settings))
        with pytest.raises(OSError, match="cannot import module asd_probe_missing"):
            list(parallel_map(probe(ours / "asd_probe_missing.py").f, [1], settings))


def probe(path):
    """The module at ``path``, imported outside sys.modules so that it does not outlive its test."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_settings_validation():
    with pytest.raises(ValueError, match="n_jobs"):
        ParallelSettings(n_jobs=0)
    with pytest.raises(ValueError, match="scheduler"):
        ParallelSettings(backend="loky", scheduler="tcp://x:1")


def test_scheduler_address_form():
    for good in ("tcp://10.0.0.5:8786", "tls://node-7.cluster:8786", "10.0.0.5:8786", "ws://h:1",
                 "tcp://[::1]:65535"):
        ParallelSettings(backend="dask", scheduler=good)
    for bad in ("tcp://127.0.0.1:notaport", "127.0.0.1:8797x", "foo://127.0.0.1:8797", "tcp:/127.0.0.1:8797",
                "tcp://127.0.0.1", "tcp://127.0.0.1:0", "tcp://127.0.0.1:65536", "tcp://:8786"):
        with pytest.raises(ConfigError, match=f"^params.yaml: parallel: scheduler must be a Dask scheduler address "
                                              f"\\[tcp\\|tls\\|ws\\|wss://\\]host:port .*, got '{bad}'$"):
            parse(ParallelSettings, {"backend": "dask", "scheduler": bad}, "params.yaml: parallel")


@pytest.mark.skipif(not shutil.which("taskset") or len(os.sched_getaffinity(0)) < 2, reason="needs taskset, 2 cores")
def test_all_cores_means_the_cores_this_process_may_use():
    code = "from asdlib.parallel import ParallelSettings; print(ParallelSettings(n_jobs=-1).workers())"
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "1"
