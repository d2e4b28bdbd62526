"""check_params refuses splits that would only fail (or silently shrink) a later stage: a
mix.splits entry that is no manifest split, a train.score_splits entry that mix does not mix."""

from pathlib import Path

import pytest
import torch
import yaml

from asdlib.config import ConfigError
from stages import check_params

ROOT = Path(__file__).resolve().parents[1]


def _write_params(tmp_path: Path, monkeypatch, edit) -> None:
    """The shipped params.yaml, changed by ``edit``, in a fresh folder made the working one."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)  # stages read params.yaml and write data/ where they run


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["mix"].update(splits=["train", "tset"]),
     "params.yaml: mix.splits: ['tset'] not a manifest split (train, test, eval)"),
    (lambda p: p["train"].update(score_splits=["test", "eval"]),
     "params.yaml: train.score_splits: ['eval'] not in mix.splits ['train', 'test']"),
    (lambda p: (p["mix"].update(splits=["train"]), p["corpus"].update(source="mimii"),
                p["train"].update(conditions=["0dB"])),
     "params.yaml: train.score_splits: ['test'] not in mix.splits ['train']"),  # MIMII: stored by mix.splits too
])
def test_splits_not_mixed_are_refused(edit, message, tmp_path, monkeypatch):
    _write_params(tmp_path, monkeypatch, edit)
    with pytest.raises(ConfigError) as raised:
        check_params.main()
    assert str(raised.value) == message
    assert not (tmp_path / "data" / "params_checked.txt").exists()


def test_scoring_a_mixed_eval_split_passes(tmp_path, monkeypatch):
    _write_params(tmp_path, monkeypatch, lambda p: (p["mix"].update(splits=["train", "test", "eval"]),
                                                    p["train"].update(score_splits=["test", "eval"])))
    check_params.main()
    assert (tmp_path / "data" / "params_checked.txt").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal of cuda where CUDA is absent")
@pytest.mark.parametrize("edit, key", [
    (lambda p: p["snr"]["train"].update(device="cuda"), "snr.train.device"),
    (lambda p: p["detectors"]["conformer_ae"]["pretrain"].update(device="cuda"),
     "detectors.conformer_ae.pretrain.device"),
    (lambda p: p["detectors"]["dense_ae"]["train"].update(device="cuda"), "detectors.dense_ae: train.device"),
])
def test_cuda_where_it_is_absent_is_refused_naming_the_key(edit, key, tmp_path, monkeypatch):
    _write_params(tmp_path, monkeypatch, edit)
    with pytest.raises(ValueError) as raised:
        check_params.main()
    assert str(raised.value) == (f"params.yaml: {key}: device 'cuda' requested but CUDA is not available "
                                 "(use 'auto' or 'cpu')")


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["corpus"].update(source="dcase2020", machine_types=["Fan"]),
     "params.yaml: corpus.machine_types: unknown machine type 'Fan' (allowed: fan, pump, slider, valve, "
     "ToyCar, ToyConveyor) for source dcase2020"),
    (lambda p: (p["corpus"].update(source="mimii", machine_types=["ToyCar"]),
                p["train"].update(conditions=["0dB"])),
     "params.yaml: corpus.machine_types: unknown machine type 'ToyCar' (allowed: fan, pump, slider, valve) "
     "for source mimii"),
    (lambda p: (p["corpus"].update(source="mimii", channel=8), p["train"].update(conditions=["0dB"])),
     "params.yaml: corpus.channel: MIMII records 8 channels (0..7), got 8"),
    (lambda p: p["corpus"].update(machine_types=["toaster"]),
     "params.yaml: corpus.machine_types: unknown machine type 'toaster' (known: fan, pump, slider, valve)"),
])
def test_real_corpus_types_and_channel_are_checked_before_any_download(edit, message, tmp_path, monkeypatch):
    _write_params(tmp_path, monkeypatch, edit)
    with pytest.raises(ConfigError) as raised:
        check_params.main()
    assert str(raised.value) == message
