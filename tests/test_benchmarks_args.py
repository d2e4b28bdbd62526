"""Benchmarks refuse bad arguments with a one-line usage error (exit 2), before any work."""

import dataclasses
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch

from asdlib import parallel
from asdlib.noise_bank import write_noise_bank

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def load(script: str, monkeypatch) -> ModuleType:
    """``benchmarks/<script>`` as a module (benchmarks are scripts, not a package), in
    ``sys.modules`` for the test (dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(Path(script).stem, BENCHMARKS / script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def run_main(module, args, monkeypatch, capsys):
    """Run a benchmark module's main with ``args``: its exit code and stderr lines."""
    monkeypatch.setattr(sys, "argv", [Path(module.__file__).name, *args])
    with pytest.raises(SystemExit) as exited:
        module.main()
    return exited.value.code, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("script,args,message", [
    ("bench_training.py", ["--seconds", "2", "--clips", "4"],
     "--clips must be at least 6 (STgram-MFN's cross-fitted Mahalanobis scores need 3 training clips of each "
     "of the 2 machine IDs), got 4"),
    ("bench_detector_quality.py", ["dense_ae", "raw", "clean", "notjson"],
     "settings: not valid JSON (Expecting value: line 1 column 1 (char 0)): 'notjson'"),
    ("bench_detector_quality.py", ["dense_ae", "raw", "clean", '{"train": {"epoch": 1}}'],
     "settings.train.epoch: unknown key (allowed: "),
    ("bench_detector_quality.py", ["dense_ae", "raw", "clean", "--repo", "/nonexistent"],
     "--repo /nonexistent: no such folder"),
    ("auc_per_fault.py", ["--repo", "/nonexistent"], "--repo /nonexistent: no params.yaml there"),
    ("auc_per_fault.py", ["--input", "foo"], "argument --input: invalid choice: 'foo'"),
    ("bench_mixing.py", ["--clips", "0"], "--clips must be at least 1, got 0"),
    ("bench_mixing.py", ["--clips", "-3"], "--clips must be at least 1, got -3"),
    ("bench_mixing.py", ["--seconds", "0"], "--seconds must be finite and at least one sample (6.25e-05 s), got 0"),
    ("bench_mixing.py", ["--jobs", "0"], "--jobs 0: n_jobs must be -1 or a positive integer, got 0"),
    ("bench_mixing.py", ["--jobs", "-2"], "--jobs -2: n_jobs must be -1 or a positive integer, got -2"),
    ("mse_scores.py", ["--trials", "0"], "--trials must be at least 1, got 0"),
    ("mse_scores.py", ["--n", "1024"], "--n must be at least 2048 (two of the longest period searched, 1024, "
                                       "as asdlib.mse.extract needs), got 1024"),
    ("mse_scores.py", ["--snr", "0", "nan"], "--snr must be finite numbers of dB, got 0 nan"),
    ("bench_snr.py", ["--threads", "0"], "--threads must be at least 1, got 0"),
    ("bench_snr.py", ["--epochs", "-1"], "--epochs must be at least 1 (or 0: the default count), got -1"),
    ("bench_models.py", ["--threads", "0"], "--threads must be at least 1, got 0"),
    ("bench_models.py", ["--device", "tpu"],
     "--device tpu: device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'"),
    ("bench_models.py", ["--fb-batch", "1"], "--fb-batch must be at least 2, got 1"),
    ("bench_models.py", ["--batch", "1"], "--batch must be at least 2, got 1"),
    ("bench_models.py", ["--repeats", "0"], "--repeats must be at least 1, got 0"),
    ("seed_study.py", ["--out", "seeds", "--seeds", "1", "--params", "nothere.yaml"],
     "--params nothere.yaml: no such file"),
    ("seed_study.py", ["--out", "seeds", "--seeds", "1", "--repo", "/nonexistent"],
     "--repo /nonexistent: no such folder"),
    ("data_scale.py", ["--set", "corpus.synthetic.nothere=1"],
     "--set corpus.synthetic.nothere=1: params.yaml has no 'nothere' there"),
    ("data_scale.py", ["--set", "corpus.synthetic.train_clips_per_id"],
     "--set corpus.synthetic.train_clips_per_id: write KEY=VALUE"),
    ("data_scale.py", ["--condition", "clen"], "--condition clen: condition 'clen' must be 'clean' or like '-6dB'"),
])
def test_bad_arguments_end_in_a_usage_error(script, args, message, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)  # a benchmark that went on would change directory
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # and might leave scratch folders
    code, err = run_main(load(script, monkeypatch), args, monkeypatch, capsys)
    assert code == 2
    assert err[-1].startswith(f"{script}: error: ") and message in err[-1]
    assert not any(line.startswith("Traceback") for line in err)
    assert not any(tmp_path.iterdir())


def test_bench_models_says_when_cuda_is_missing(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, err = run_main(load("bench_models.py", monkeypatch), ["--device", "cuda"], monkeypatch, capsys)
    assert code == 2
    assert err[-1] == ("bench_models.py: error: --device cuda: device 'cuda' requested but CUDA is not available "
                       "(use 'auto' or 'cpu')")


@pytest.mark.parametrize("jobs", ["1", "-1"])
def test_bench_mixing_builds_once_with_one_worker(jobs, monkeypatch, capsys):
    """--jobs -1 is the usable cores, counted before anything is printed; one worker builds once."""
    module = load("bench_mixing.py", monkeypatch)
    monkeypatch.setattr(parallel, "usable_cores", lambda: 1)
    monkeypatch.setattr(module, "write_noise_bank", lambda folder, settings: write_noise_bank(
        folder, dataclasses.replace(settings, seconds=1.0, names=settings.names[:1])))  # quick to write
    monkeypatch.setattr(sys, "argv", ["bench_mixing.py", "--clips", "1", "--seconds", "0.1", "--jobs", jobs])
    module.main()
    out = capsys.readouterr().out.splitlines()
    builds = [line for line in out if line.startswith("build_mixtures")]
    assert len(builds) == 1 and builds[0].startswith("build_mixtures, 1 worker(s): ")
    assert out[-1].startswith("mixing: kernel_rt=") and " build_rt_1_workers=" in out[-1]


def test_mse_scores_pursuit_is_the_librarys_at_the_shortest_clip(monkeypatch):
    """At --n 2048 the library's pursuit meets a period it has removed already: the benchmark's
    copy of the pursuit must skip it too, or its check against the library fails."""
    module = load("mse_scores.py", monkeypatch)
    n = 2 * module.Q_MAX
    module._check_against_library(module.EnergyPlan(n, module.Q_MIN, module.Q_MAX), n)


def test_seed_study_reports_a_fully_resumed_run(monkeypatch, capsys, tmp_path):
    for seed in (1, 2):
        (tmp_path / f"dense_ae.raw.clean.seed{seed}.csv").touch()
    module = load("seed_study.py", monkeypatch)
    monkeypatch.setattr(module, "subprocess", SimpleNamespace(run=None))  # nothing is trained
    monkeypatch.setattr(sys, "argv", ["seed_study.py", "--out", str(tmp_path), "--seeds", "1", "2",
                                      "--models", "dense_ae"])
    module.main()
    assert capsys.readouterr().out.splitlines() == [
        f"seed 1: dense_ae raw clean: {tmp_path / 'dense_ae.raw.clean.seed1.csv'} already there, kept",
        f"seed 2: dense_ae raw clean: {tmp_path / 'dense_ae.raw.clean.seed2.csv'} already there, kept",
        f"seed_study: 2 tables in {tmp_path} (0 trained now, 2 already there)",
    ]


@pytest.mark.parametrize("keep", [False, True])
def test_data_scale_removes_its_scratch_copy_when_a_step_fails(keep, monkeypatch, capsys, tmp_path):
    """A failure after the copy is made removes it, unless --keep named it."""
    module = load("data_scale.py", monkeypatch)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(module, "copy_repo", lambda dest: shutil.copy(ROOT / "params.yaml", dest / "params.yaml"))
    failed = subprocess.CompletedProcess([], 1, stdout="", stderr="no dvc here")
    monkeypatch.setattr(module, "subprocess", SimpleNamespace(run=lambda *args, **kwargs: failed))
    args = ["--set", "corpus.synthetic.train_clips_per_id=160", *(["--keep", str(tmp_path / "kept")] if keep else [])]
    monkeypatch.setattr(sys, "argv", ["data_scale.py", *args])
    with pytest.raises(SystemExit) as exited:
        module.main()
    assert str(exited.value.code).startswith("dvc repro mix failed in ") and "no dvc here" in exited.value.code
    assert [path.name for path in tmp_path.iterdir()] == (["kept"] if keep else [])
    if keep:
        assert "train_clips_per_id: 160" in (tmp_path / "kept" / "params.yaml").read_text()
