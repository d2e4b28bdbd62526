"""Both shipped params files parse completely; typos and values that would fail a later stage
are caught before any work."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from asdlib.config import ConfigError
from asdlib.snr_estimation import SnrEstimatorSettings
from stages import check_params
from stages.common import params_section

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
    (lambda p: p["detectors"].update(dense_aee={}), "params.yaml: detectors.dense_aee: unknown detector"),
    (lambda p: p.update(detectors=3), "params.yaml: detectors: expected a mapping"),
    (lambda p: p["train"].update(conditions=["clean", "6 dB"]), "condition '6 dB' must be 'clean' or like '-6dB'"),
    (lambda p: p["train"].update(conditions=["clean", "clean"]), "params.yaml: train: conditions: ['clean'] listed twice"),
    (lambda p: p["corpus"].update(mimii_levels=["-6dB", "0dB", "-6dB"]),
     "params.yaml: corpus: mimii_levels: ['-6dB'] listed twice"),
    (lambda p: p["train"].update(conditions=["clean", "12dB"]),
     "params.yaml: train.conditions: ['12dB'] not in mix.conditions ['clean', '-6dB', '0dB', '6dB']"),
    (lambda p: p["train"].update(score_splits=[]), "params.yaml: train: score_splits must list at least one"),
    (lambda p: p["train"].update(score_splits=["tset"]), "score_splits: ['tset'] not a manifest split"),
    (lambda p: p["evaluate"]["bootstrap"].update(seed=-1), "params.yaml: evaluate.bootstrap: seed must be >= 0"),
    (lambda p: p["detectors"]["dense_ae"]["train"].update(lr=float("nan")),
     "params.yaml: detectors.dense_ae.train.lr: expected a finite number"),
])
def test_bad_params_name_the_key(edit, message, tmp_path, monkeypatch):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)  # stages read params.yaml and write data/ where they run
    with pytest.raises(ConfigError) as raised:
        check_params.main()
    assert message in str(raised.value)
    assert not (tmp_path / "data" / "params_checked.txt").exists()


def test_empty_sections_keep_their_defaults(tmp_path, monkeypatch):
    """`detectors:` or a nested `model:` left empty (YAML's null) means the defaults, as `{}`."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["snr"]["model"] = None
    params["detectors"] = None
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    check_params.main()
    assert (tmp_path / "data" / "params_checked.txt").exists()
    assert params_section("snr", SnrEstimatorSettings).model == SnrEstimatorSettings().model
