"""Both shipped params files parse completely; typos are caught before any work."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def check(params_text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / "params.yaml").write_text(params_text)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "stages.check_params"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)


@pytest.mark.parametrize("name", ["params.yaml", "params-published.yaml"])
def test_shipped_params_parse(name, tmp_path):
    result = check((ROOT / name).read_text(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "params_checked.txt").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["mse"]["settings"].update(q_maxx=3), "params.yaml: mse.settings.q_maxx: unknown key"),
    (lambda p: p["detectors"]["dense_ae"]["train"].update(epochs="ten"),
     "params.yaml: detectors.dense_ae.train.epochs: expected an integer"),
    (lambda p: p.update(evaluat={}), "params.yaml: evaluat: unknown section"),
    (lambda p: p["corpus"].update(source="dcase2021"), "params.yaml: corpus.source: expected one of"),
])
def test_bad_params_name_the_key(edit, message, tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    edit(params)
    result = check(yaml.safe_dump(params), tmp_path)
    assert result.returncode == 1
    assert message in result.stderr, result.stderr
    assert not (tmp_path / "data" / "params_checked.txt").exists()
