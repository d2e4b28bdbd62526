"""Benchmarks refuse bad arguments with a one-line usage error (exit 2), before any work."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_main(script, args, monkeypatch, capsys):
    """Run ``benchmarks/<script>``'s main with ``args``: its exit code and stderr lines."""
    spec = importlib.util.spec_from_file_location(Path(script).stem, BENCHMARKS / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [script, *args])
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
])
def test_bad_arguments_end_in_a_usage_error(script, args, message, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)  # a benchmark that went on would change directory
    code, err = run_main(script, args, monkeypatch, capsys)
    assert code == 2
    assert err[-1].startswith(f"{script}: error: ") and message in err[-1]
    assert not any(line.startswith("Traceback") for line in err)
