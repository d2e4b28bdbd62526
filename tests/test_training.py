"""The training loop: learning, exact resume, divergence, checkpoints, datasets."""

from __future__ import annotations

import csv
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

from asdlib import training
from asdlib.datasets import SegmentDataset, WaveformDataset, split_train_val
from asdlib.training import (CheckpointError, TrainSettings, TrainingDiverged, epoch_lr, fit,
                             load_weights, read_checkpoint, resolve_device, save_checkpoint, seed_everything)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _regression_data(n: int = 96) -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=gen)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5], [1.0]]) + 0.3
    return TensorDataset(x, y)


def _model(seed: int = 1) -> torch.nn.Module:
    seed_everything(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.1), torch.nn.Linear(8, 1))


def _mse(model, batch, device):
    x, y = (t.to(device) for t in batch)
    return torch.nn.functional.mse_loss(model(x), y)


SETTINGS = TrainSettings(epochs=4, batch_size=16, lr=1e-2, device="cpu", val_fraction=0.0, seed=3)


def test_fit_reduces_loss_and_writes_history(tmp_path):
    data = _regression_data()
    result = fit(_model(), data, _mse, TrainSettings(epochs=6, batch_size=16, lr=2e-2, device="cpu"),
                 tmp_path, val_set=_regression_data(32))
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < 0.5 * losses[0]
    with open(tmp_path / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 7))
    assert float(rows[-1]["train_loss"]) == pytest.approx(losses[-1])
    assert (tmp_path / "last.pt").exists() and (tmp_path / "best.pt").exists()
    assert result.selection == "val_loss"
    best = min(result.history, key=lambda r: r["val_loss"])
    assert result.selected_epoch == best["epoch"]


def test_without_a_bar_the_first_and_last_epochs_are_log_lines(tmp_path, caplog):
    with caplog.at_level("INFO", logger="asdlib.training"):
        fit(_model(), _regression_data(), _mse, SETTINGS, tmp_path, name="toy")  # epochs far under 30 s
    lines = [r.getMessage() for r in caplog.records if ": epoch " in r.getMessage()]
    assert [line.split(",")[0] for line in lines] == ["toy: epoch 1/4", "toy: epoch 4/4"]
    assert "train loss" in lines[0] and "val loss nan" in lines[0]


def test_without_a_bar_long_epochs_are_each_a_log_line(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(training, "_EPOCH_LOG_SECONDS", 0.0)  # every epoch counts as long
    with caplog.at_level("INFO", logger="asdlib.training"):
        fit(_model(), _regression_data(), _mse, SETTINGS, tmp_path, name="toy")
    lines = [r.getMessage() for r in caplog.records if ": epoch " in r.getMessage()]
    assert [line.split(",")[0] for line in lines] == [f"toy: epoch {k}/4" for k in range(1, 5)]


def test_model_holds_best_weights_after_fit(tmp_path):
    model = _model()
    fit(model, _regression_data(), _mse, TrainSettings(epochs=3, batch_size=16, device="cpu"),
        tmp_path, val_set=_regression_data(16))
    best = read_checkpoint(tmp_path / "best.pt")["model"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, best[key])


def test_resume_gives_identical_weights(tmp_path):
    data, val = _regression_data(), _regression_data(24)
    full = _model()
    fit(full, data, _mse, SETTINGS, tmp_path / "full", val_set=val)

    part = _model()
    first = fit(part, data, _mse, TrainSettings(**{**SETTINGS.__dict__, "epochs": 2}), tmp_path / "part",
                val_set=val)
    assert first.resumed_from == 0 and len(first.history) == 2
    resumed_model = _model(seed=99)  # other initial weights: everything must come from the checkpoint
    resumed = fit(resumed_model, data, _mse, SETTINGS, tmp_path / "part", val_set=val)
    assert resumed.resumed_from == 2 and len(resumed.history) == 4
    for name in ("last.pt", "best.pt"):
        a = read_checkpoint(tmp_path / "full" / name)["model"]
        b = read_checkpoint(tmp_path / "part" / name)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert [r["train_loss"] for r in read_checkpoint(tmp_path / "full" / "last.pt")["history"]] == \
        [r["train_loss"] for r in resumed.history]


def test_resume_remembers_a_best_epoch_before_the_interruption(tmp_path):
    """Validation targets of the opposite sign: the better the fit, the worse the validation
    loss, so the best epoch is the first, and a resume after epoch 2 must still pick it."""
    data = _regression_data()
    x, y = _regression_data(24).tensors
    val = TensorDataset(x, -y)
    full = fit(_model(), data, _mse, SETTINGS, tmp_path / "full", val_set=val)
    assert full.selected_epoch == 1
    fit(_model(), data, _mse, TrainSettings(**{**SETTINGS.__dict__, "epochs": 2}), tmp_path / "part", val_set=val)
    resumed = fit(_model(seed=99), data, _mse, SETTINGS, tmp_path / "part", val_set=val)
    assert resumed.resumed_from == 2 and resumed.selected_epoch == 1
    a = read_checkpoint(tmp_path / "full" / "best.pt")["model"]
    b = read_checkpoint(tmp_path / "part" / "best.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_crash_mid_epoch(tmp_path):
    data = _regression_data()
    full = _model()
    fit(full, data, _mse, SETTINGS, tmp_path / "full")
    calls = {"n": 0}

    def crashing(model, batch, device):
        calls["n"] += 1
        if calls["n"] == 15:  # inside epoch 3 (6 batches per epoch)
            raise KeyboardInterrupt
        return _mse(model, batch, device)

    with pytest.raises(KeyboardInterrupt):
        fit(_model(), data, crashing, SETTINGS, tmp_path / "crash")
    assert len(read_checkpoint(tmp_path / "crash" / "last.pt")["history"]) == 2
    model = _model(seed=5)
    result = fit(model, data, _mse, SETTINGS, tmp_path / "crash")
    assert result.resumed_from == 2
    for key, value in full.state_dict().items():
        assert torch.equal(value, model.state_dict()[key])


def test_mismatched_fingerprint_starts_over(tmp_path, caplog):
    data = _regression_data()
    fit(_model(), data, _mse, TrainSettings(**{**SETTINGS.__dict__, "epochs": 2}), tmp_path)
    other = TrainSettings(**{**SETTINGS.__dict__, "lr": 5e-3})
    with caplog.at_level("WARNING"):
        result = fit(_model(), data, _mse, other, tmp_path)
    assert result.resumed_from == 0
    assert "starting over" in caplog.text


def test_cosine_schedule_change_is_not_resumed(tmp_path):
    cos = TrainSettings(**{**SETTINGS.__dict__, "scheduler": "cosine", "cosine_start_epoch": 0, "epochs": 2})
    fit(_model(), _regression_data(), _mse, cos, tmp_path)
    longer = TrainSettings(**{**cos.__dict__, "epochs": 4})
    assert fit(_model(), _regression_data(), _mse, longer, tmp_path).resumed_from == 0


def test_epoch_lr_cosine():
    s = TrainSettings(epochs=10, lr=1e-3, lr_min=1e-5, scheduler="cosine", cosine_start_epoch=4)
    lrs = [epoch_lr(s, e) for e in range(10)]
    assert lrs[:5] == [1e-3] * 5
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:]))
    assert lrs[-1] > 1e-5
    assert epoch_lr(s, 10) == pytest.approx(1e-5)


def test_nan_loss_raises_and_keeps_last_good_checkpoint(tmp_path):
    data = _regression_data()
    epochs_done = {"n": 0}

    def exploding(model, batch, device):
        loss = _mse(model, batch, device)
        if model.training and epochs_done["n"] >= 12:  # from epoch 3 on (6 batches per epoch)
            loss = loss * float("nan")
        epochs_done["n"] += model.training
        return loss

    with pytest.raises(TrainingDiverged, match=r"mynet: epoch 3"):
        fit(_model(), data, exploding, SETTINGS, tmp_path, name="mynet")
    state = read_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    model = _model()
    save_checkpoint(tmp_path / "m.pt", model, extra={"classes": ["fan/id_00"], "mean": torch.ones(3)})
    fresh = _model(seed=7)
    extra = load_weights(tmp_path / "m.pt", fresh)
    assert extra["classes"] == ["fan/id_00"] and torch.equal(extra["mean"], torch.ones(3))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))

    wider = torch.nn.Sequential(torch.nn.Linear(4, 9), torch.nn.Dropout(0.1), torch.nn.Linear(9, 1))
    with pytest.raises(CheckpointError, match=r"m\.pt.*first mismatching key 0\.weight"):
        load_weights(tmp_path / "m.pt", wider)
    with pytest.raises(CheckpointError, match=r"m\.pt: holds a torch.nn.modules.container.Sequential"):
        load_weights(tmp_path / "m.pt", torch.nn.Linear(4, 1))


def test_checkpoint_loading_runs_no_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": 1, "model": {}, "evil": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="evil.pt: not a readable checkpoint") as refused:
        read_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt") as junk:
        load_weights(tmp_path / "junk.pt", _model())
    for error in (refused, junk):  # one line, without torch's advice to load unsafely
        assert "\n" not in str(error.value) and "weights_only" not in str(error.value)
    assert "Unsupported global" in str(refused.value)


def test_settings_validation_and_device():
    with pytest.raises(ValueError, match="device"):
        TrainSettings(device="gpu")
    with pytest.raises(ValueError, match="val_fraction"):
        TrainSettings(val_fraction=1.0)
    for seed in (-1, 2**32):  # torch and numpy refuse them only when training starts
        with pytest.raises(ValueError, match=rf"seed must be in \[0, 2\*\*32\), got {seed}"):
            TrainSettings(seed=seed)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def _manifest(n_per_id: int = 10) -> pd.DataFrame:
    rows = [dict(clip_id=f"{t}_{i}_{k:02d}", machine_type=t, machine_id=i, split="train", label="normal")
            for t in ("fan", "pump") for i in ("id_00", "id_02") for k in range(n_per_id)]
    return pd.DataFrame(rows)


def test_split_train_val_is_per_class_deterministic_and_refuses_test_rows():
    rows = _manifest()
    train, val = split_train_val(rows, 0.2, seed=1)
    assert len(val) == 8 and len(train) == 32
    assert (val.groupby(["machine_type", "machine_id"]).size() == 2).all()
    train2, val2 = split_train_val(rows.sample(frac=1.0, random_state=0), 0.2, seed=1)
    assert sorted(val2["clip_id"]) == sorted(val["clip_id"])
    assert sorted(split_train_val(rows, 0.2, seed=2)[1]["clip_id"]) != sorted(val["clip_id"])
    bad = rows.copy()
    bad.loc[3, "split"] = "test"
    with pytest.raises(ValueError, match=bad.loc[3, "clip_id"]):
        split_train_val(bad, 0.2, seed=1)
    anomalous = rows.copy()
    anomalous.loc[5, "label"] = "anomaly"  # still in the training split
    with pytest.raises(ValueError, match=anomalous.loc[5, "clip_id"]):
        split_train_val(anomalous, 0.2, seed=1)


def test_waveform_dataset_checks_clips():
    rows = _manifest(2)
    waves = {cid: np.full(800, k, np.float32) for k, cid in enumerate(rows["clip_id"])}
    ds = WaveformDataset(rows, lambda r: waves[r["clip_id"]], labels=list(range(len(rows))), cache=True)
    wave, label = ds[3]
    assert wave.shape == (800,) and float(wave[0]) == 3 and int(label) == 3
    waves[rows["clip_id"].iloc[5]] = np.zeros(700, np.float32)
    with pytest.raises(ValueError, match=f"{rows['clip_id'].iloc[5]}: 700 samples"):
        WaveformDataset(rows, lambda r: waves[r["clip_id"]], cache=True)
    waves[rows["clip_id"].iloc[5]] = np.full(800, math.nan, np.float32)
    lazy = WaveformDataset(rows, lambda r: waves[r["clip_id"]], cache=False)
    with pytest.raises(ValueError, match=rows["clip_id"].iloc[5]):
        lazy[5]


def test_segment_dataset_shapes():
    feats = [torch.arange(3 * 20, dtype=torch.float32).reshape(3, 20), torch.zeros(3, 30)]
    ds = SegmentDataset(feats, segment=8, epoch_passes=2)
    assert len(ds) == 4
    item = ds[0]
    assert item.shape == (8, 3)
    assert torch.equal(item[1] - item[0], torch.ones(3))  # consecutive frames
    centre = SegmentDataset(feats, segment=8, random_offset=False)[0]
    assert torch.equal(centre[0], feats[0][:, 6])


def test_equal_weights_give_equal_checkpoint_bytes(tmp_path):
    """Same params, same bytes: the file name must not leak into the checkpoint."""
    import torch as _torch

    from asdlib.training import save_checkpoint as _save

    model = _torch.nn.Linear(3, 2)
    _save(tmp_path / "a.pt", model, extra={"k": 1})
    _save(tmp_path / "b.pt", model, extra={"k": 1})
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_non_finite_gradient_raises_and_keeps_last_good_checkpoint(tmp_path):
    calls = {"n": 0}

    def nan_gradient(model, batch, device):
        loss = _mse(model, batch, device)
        calls["n"] += model.training
        if calls["n"] == 18:  # epoch 3's last batch (of 6): a finite loss with a NaN gradient
            loss = loss + torch.sqrt((model[0].weight * 0).square().sum())
        return loss

    with pytest.raises(TrainingDiverged, match=r"mynet: epoch 3, batch 6: the gradient of 0\.weight is not finite"):
        fit(_model(), _regression_data(), nan_gradient, SETTINGS, tmp_path, name="mynet")
    state = read_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values())


class _BufferedNet(torch.nn.Module):
    """A linear model whose buffer a test can spoil without touching the loss."""

    def __init__(self) -> None:
        super().__init__()
        seed_everything(1)
        self.linear = torch.nn.Linear(4, 1)
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def test_non_finite_weights_are_never_written_as_a_checkpoint(tmp_path):
    calls = {"n": 0}

    def spoiling(model, batch, device):
        calls["n"] += 1
        if calls["n"] == 15:  # inside epoch 3
            model.seen.fill_(math.inf)
        return _mse(model, batch, device)

    with pytest.raises(TrainingDiverged, match=r"net: epoch 3: seen is not finite"):
        fit(_BufferedNet(), _regression_data(), spoiling, SETTINGS, tmp_path, name="net")
    state = read_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 2 and float(state["model"]["seen"]) == 0


def _nan_training_loss(model, batch, device):
    return _mse(model, batch, device) * (math.nan if model.training else 1.0)


def _inf_validation_loss(model, batch, device):
    return _mse(model, batch, device) * (1.0 if model.training else math.inf)


@pytest.mark.parametrize("loss_fn, problem", [(_nan_training_loss, "epoch 1, batch 1: loss is nan"),
                                              (_inf_validation_loss, "epoch 1: validation loss is inf")])
def test_divergence_in_the_first_epoch_says_there_is_no_checkpoint(tmp_path, loss_fn, problem):
    with pytest.raises(TrainingDiverged,
                       match=rf"^mynet: {problem}; stopped, no epoch completed, so there is no checkpoint$"):
        fit(_model(), _regression_data(), loss_fn, SETTINGS, tmp_path, val_set=_regression_data(32), name="mynet")
    assert not (tmp_path / "last.pt").exists()


def test_resume_rewrites_a_history_the_stop_came_before(tmp_path, monkeypatch):
    write = training._write_history

    def stopped_on_the_last_epoch(path, history):
        if len(history) == SETTINGS.epochs:  # after last.pt, before history.csv
            raise KeyboardInterrupt
        write(path, history)

    monkeypatch.setattr(training, "_write_history", stopped_on_the_last_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), _regression_data(), _mse, SETTINGS, tmp_path)
    monkeypatch.setattr(training, "_write_history", write)
    result = fit(_model(), _regression_data(), _mse, SETTINGS, tmp_path)
    assert result.resumed_from == SETTINGS.epochs
    with open(tmp_path / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == list(range(1, SETTINGS.epochs + 1))
    assert float(rows[-1]["train_loss"]) == result.history[-1]["train_loss"]


def test_a_stage_reports_divergence_in_one_line(monkeypatch, capsys):
    from stages import common

    monkeypatch.setattr(common, "configure_logging", lambda: None)  # keep pytest's logging

    def main():
        raise TrainingDiverged("mynet: epoch 3, batch 1: loss is nan; stopped")

    with pytest.raises(SystemExit) as stop:
        common.run(main)
    assert stop.value.code == 1
    assert capsys.readouterr().err == "error: mynet: epoch 3, batch 1: loss is nan; stopped\n"


def test_training_is_deterministic_inside_fit_and_restored_after(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(training, "_train_epoch", _recording_epoch(training._train_epoch, seen))
    torch.use_deterministic_algorithms(False)
    fit(_model(), _regression_data(), _mse, SETTINGS, tmp_path)
    assert seen and all(seen)
    assert not torch.are_deterministic_algorithms_enabled()


def _recording_epoch(epoch, seen):
    def wrapped(*args, **kwargs):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return epoch(*args, **kwargs)
    return wrapped


def test_the_one_call_optimizer_step_gives_the_weights_of_the_per_tensor_loop(tmp_path, monkeypatch):
    """fit's Adam updates all parameters in one call (foreach); the committed results were trained
    with PyTorch's per-tensor loop, which must give the same bits."""
    settings = TrainSettings(epochs=3, batch_size=16, lr=1e-2, weight_decay=0.01, device="cpu", seed=3)
    fast = _model()
    fit(fast, _regression_data(), _mse, settings, tmp_path / "foreach", val_set=_regression_data(32))
    adam = torch.optim.Adam
    monkeypatch.setattr(torch.optim, "Adam", lambda *args, **kwargs: adam(*args, **{**kwargs, "foreach": False}))
    loop = _model()
    fit(loop, _regression_data(), _mse, settings, tmp_path / "loop", val_set=_regression_data(32))
    assert all(torch.equal(a, b) for a, b in zip(fast.state_dict().values(), loop.state_dict().values()))
