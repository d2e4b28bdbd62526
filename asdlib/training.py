"""The one training loop every model uses: device, seeding, checkpoints, history, resume.

:func:`fit` trains any ``torch.nn.Module`` with Adam on a ``Dataset`` and a
caller-supplied ``loss_fn(model, batch, device) -> scalar tensor``. Every epoch it

* appends ``epoch, train_loss, val_loss, lr, seconds`` to ``run_dir/history.csv``
  (a plain CSV a DVC plot can show) and shows them on its progress bar, or, when there
  is no bar (no terminal, or :func:`asdlib.progress.bars_off`), in a log line for the
  first and last epoch and at most every 30 s in between;
* writes ``run_dir/best.pt`` when the validation loss improves, then
  ``run_dir/last.pt`` (model, optimiser, epoch, history, RNG states, fingerprint),
  both atomically.

A later call with the same model class, parameter shapes, settings (apart from
``epochs``, ``device`` and ``num_threads``, which do not change the trajectory)
and ``extra`` resumes after the last completed epoch and ends, on CPU, with
exactly the weights of an uninterrupted run with the same thread count (another
count splits floating-point sums differently, so the weights differ in the last bits).
The learning rate is a pure function of the epoch (:func:`epoch_lr`), so there is no
scheduler state to carry; a resume is refused (and training starts over, logged) if
the rates already used differ from those the new settings give, e.g. a cosine
schedule stretched to more epochs.

A NaN or infinite loss or gradient (checked before the optimiser step), or weights
or buffers that are no longer finite after an epoch, stop training with
:class:`TrainingDiverged`; the files of the last good epoch are left as they were
(the message says whether there are any: not when the first epoch diverged).
On a resume, ``history.csv`` is rewritten from the checkpoint, so a run stopped
between writing ``last.pt`` and ``history.csv`` does not leave the history an epoch short.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping, Optional

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from asdlib.config import to_dict
from asdlib.fileio import atomic_path
from asdlib.progress import progress_bar

log = logging.getLogger(__name__)

LossFn = Callable[[torch.nn.Module, Any, torch.device], torch.Tensor]
CHECKPOINT_FORMAT = 1
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "lr", "seconds")
# Settings a checkpoint may be resumed under other values of: they do not change what
# training does (num_threads changes only the last bits of the sums).
_NOT_FINGERPRINTED = ("epochs", "device", "num_threads", "checkpoint")
# Without a progress bar, an epoch's losses are logged for the first and last epoch
# and otherwise at most this often, so short epochs do not flood the log.
_EPOCH_LOG_SECONDS = 30.0


class TrainingDiverged(RuntimeError, ValueError):
    """The loss, a gradient or the weights became NaN or infinite; the message names the
    model and epoch. A ``ValueError`` too: it is an expected failure of these settings
    or data (a learning rate too high, say), not a bug, so a stage reports it in one
    line like any bad input (:func:`stages.common.run`) without importing torch there."""


class DeviceUnavailable(RuntimeError, ValueError):
    """``cuda`` asked for where CUDA is not available: a setting wrong for this machine,
    reported in one line like any bad input (a ``ValueError`` too, as above)."""


class CheckpointError(ValueError):
    """A checkpoint is unreadable or does not fit the model; the message names the file."""


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings shared by every model.

    scheduler: ``none`` (constant ``lr``) or ``cosine``: constant until
    ``cosine_start_epoch`` (0-based), then cosine annealing to ``lr_min`` at the end
    of the last epoch (STgram-MFN: start 20, lr_min 1e-5).
    val_fraction: share of the training normals held out (per machine ID) for
    checkpoint choice; the test set is never used for that.
    device: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    num_threads: torch CPU threads during training; 0 leaves torch's default (the
    core count). The trained weights depend on it in the last bits: pin it to get
    the same bytes on machines with other core counts.
    grad_clip: maximum gradient norm; 0 turns clipping off.
    checkpoint: the weights the model holds after training: the epoch of lowest
    validation loss (``val_loss``; falls back to ``last`` without a validation set)
    or the last epoch.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    scheduler: Literal["none", "cosine"] = "none"
    cosine_start_epoch: int = 0
    lr_min: float = 0.0
    val_fraction: float = 0.1
    seed: int = 42
    device: str = "auto"
    num_threads: int = 0
    grad_clip: float = 0.0
    checkpoint: Literal["val_loss", "last"] = "val_loss"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"lr_min must be in [0, lr={self.lr}], got {self.lr_min}")
        for name in ("weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.cosine_start_epoch < 0:
            raise ValueError(f"cosine_start_epoch must be >= 0, got {self.cosine_start_epoch}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be in [0, 2**32), got {self.seed}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {self.num_threads}")
        if self.scheduler not in ("none", "cosine"):
            raise ValueError(f"scheduler must be 'none' or 'cosine', got {self.scheduler!r}")
        if self.checkpoint not in ("val_loss", "last"):
            raise ValueError(f"checkpoint must be 'val_loss' or 'last', got {self.checkpoint!r}")
        _parse_device(self.device)


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` did: per-epoch history and which weights the model now holds."""

    history: tuple[dict[str, float], ...]
    selected_epoch: int  # 1-based epoch whose weights the model holds
    selection: Literal["val_loss", "last"]
    checkpoint: Path  # file holding those weights
    resumed_from: int  # epochs already done when this call started (0 = fresh)


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    kind = _parse_device(spec)
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(f"device {spec!r} requested but CUDA is not available (use 'auto' or 'cpu')")
    return torch.device(spec)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) so model construction is reproducible."""
    torch.manual_seed(seed)


def epoch_lr(settings: TrainSettings, epoch: int) -> float:
    """Learning rate of 0-based ``epoch`` under ``settings``."""
    if settings.scheduler == "none" or epoch < settings.cosine_start_epoch:
        return settings.lr
    span = settings.epochs - settings.cosine_start_epoch
    progress = (epoch - settings.cosine_start_epoch) / span
    return settings.lr_min + (settings.lr - settings.lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))


def fit(
    model: torch.nn.Module,
    train_set: Dataset,
    loss_fn: LossFn,
    settings: TrainSettings,
    run_dir: str | Path,
    *,
    val_set: Optional[Dataset] = None,
    name: str = "",
    extra: Optional[Mapping[str, Any]] = None,
) -> FitResult:
    """Train ``model`` in place; afterwards it holds the selected (best or last) weights.

    ``extra`` (plain data and tensors: class lists, normalisation statistics, hashes
    of the training clip ids and data) is stored in every checkpoint and is part of the
    fingerprint, so training data of another identity is not resumed.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    name = name or type(model).__name__
    extra = dict(extra or {})
    device = resolve_device(settings.device)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    print_name = f"{name} ({run_dir})"

    with _torch_context(settings):
        model.to(device)
        # foreach: one call per step for all parameters, not one per tensor; the same arithmetic
        # (bit-equal weights), and on a CPU 9.8 -> 6.1 ms a step for the Conformer AE's 238 tensors
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay,
                                     foreach=True)
        generator = torch.Generator()
        fingerprint = model_fingerprint(model, settings, extra)
        state = _resume_state(last_path, fingerprint, settings, print_name)
        if state is None:
            for stale in (last_path, best_path, run_dir / "history.csv"):
                stale.unlink(missing_ok=True)
            seed_everything(settings.seed)
            generator.manual_seed(settings.seed)
            history: list[dict[str, float]] = []
            best_val = math.inf
        else:
            _apply_weights(state["model"], model, last_path)
            optimizer.load_state_dict(state["optimizer"])
            _set_rng_state(state["rng"], generator)
            history = list(state["history"])
            best_val = float(state["best_val_loss"])
            _write_history(run_dir / "history.csv", history)  # a stop may have come before it was written
            log.info("%s: resuming after epoch %d", print_name, len(history))
        resumed_from = len(history)

        # A last batch of one clip would break BatchNorm in training mode: drop it.
        drop_last = len(train_set) > 1 and len(train_set) % settings.batch_size == 1
        loader = DataLoader(train_set, batch_size=settings.batch_size, shuffle=True, generator=generator,
                            num_workers=0, drop_last=drop_last)
        if len(loader) == 0:
            raise ValueError(f"{print_name}: the training set is empty")
        remaining = range(resumed_from, settings.epochs)
        logged = -math.inf  # when an epoch line was last logged (without a bar)
        with progress_bar(total=len(remaining) * len(loader), desc=name, unit="batch") as bar:
            for epoch in remaining:
                started = time.perf_counter()
                lr = epoch_lr(settings, epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                where = f"{name}: epoch {epoch + 1}"
                with _what_is_kept(epoch):  # epochs completed before this one
                    train_loss = _train_epoch(model, loader, loss_fn, optimizer, settings, device, bar, where)
                    _check_state_finite(model, where)
                    val_loss = (_evaluate(model, val_set, loss_fn, settings, device, where)
                                if val_set is not None else math.nan)
                record = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
                          "seconds": round(time.perf_counter() - started, 3)}
                history.append(record)
                bar.set_postfix(epoch=epoch + 1, train=f"{train_loss:.4g}", val=f"{val_loss:.4g}")
                if bar.disable and (epoch + 1 == settings.epochs
                                    or time.perf_counter() - logged >= _EPOCH_LOG_SECONDS):
                    logged = time.perf_counter()
                    log.info("%s: epoch %d/%d, train loss %.4g, val loss %.4g, %.1f s", name, epoch + 1,
                             settings.epochs, train_loss, val_loss, record["seconds"])
                checkpoint_state = dict(fingerprint=fingerprint, epoch=epoch + 1, history=history,
                                        best_val_loss=best_val, extra=extra)
                if val_set is not None and val_loss < best_val:
                    best_val = val_loss
                    checkpoint_state["best_val_loss"] = best_val
                    save_checkpoint(best_path, model, **checkpoint_state)
                save_checkpoint(last_path, model, optimizer=optimizer.state_dict(),
                                rng=_rng_state(generator), **checkpoint_state)
                _write_history(run_dir / "history.csv", history)

        selection: Literal["val_loss", "last"] = settings.checkpoint
        if val_set is None and selection == "val_loss":
            log.info("%s: no validation set, keeping the last epoch's weights", print_name)
            selection = "last"
        if selection == "val_loss":
            if not best_path.exists():
                raise CheckpointError(f"{best_path}: missing, though {last_path} has a validation history")
            chosen = read_checkpoint(best_path)
            _apply_weights(chosen["model"], model, best_path)
            return FitResult(tuple(history), int(chosen["epoch"]), selection, best_path, resumed_from)
        return FitResult(tuple(history), len(history), selection, last_path, resumed_from)


def model_fingerprint(model: torch.nn.Module, settings: TrainSettings, extra: Mapping[str, Any]) -> str:
    """Hash of model class, state shapes, trajectory-relevant settings and ``extra``."""
    digest = hashlib.sha256()
    shapes = [[key, list(value.shape)] for key, value in model.state_dict().items()]
    relevant = {k: v for k, v in to_dict(settings).items() if k not in _NOT_FINGERPRINTED}
    plain = {k: v for k, v in extra.items() if not isinstance(v, torch.Tensor)}
    digest.update(json.dumps([_class_name(model), shapes, relevant, plain], sort_keys=True, default=str).encode())
    for key in sorted(k for k, v in extra.items() if isinstance(v, torch.Tensor)):
        digest.update(key.encode())
        digest.update(extra[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def save_checkpoint(path: str | Path, model: torch.nn.Module, **state: Any) -> None:
    """Write ``model``'s weights plus ``state`` (plain data, tensors) atomically to ``path``."""
    payload = {"format": CHECKPOINT_FORMAT, "model_class": _class_name(model), "model": model.state_dict(), **state}
    buffer = io.BytesIO()  # torch.save names the zip's inner folder after a file's name: the
    torch.save(payload, buffer)  # random temporary one would make equal weights differ in bytes
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no code is run), onto the CPU."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise CheckpointError(f"{path}: not a readable checkpoint ({_load_failure(exc)})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT or "model" not in payload:
        raise CheckpointError(f"{path}: not an asdlib checkpoint (format {CHECKPOINT_FORMAT})")
    return payload


def _load_failure(exc: Exception) -> str:
    """torch.load's reason on one line: the unpickler's complaint when it refused the
    file (not torch's advice to load it unsafely), else the message's first sentence."""
    text = str(exc)
    refused = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\s*\n|$)", text, re.S)
    reason = refused.group(1).split(". Please use")[0] if refused else text.split(". ")[0]
    return " ".join(reason.split()) or type(exc).__name__


def load_weights(path: str | Path, model: torch.nn.Module) -> dict[str, Any]:
    """Load the weights in ``path`` into ``model``; return the checkpoint's ``extra`` data.

    Raises :class:`CheckpointError` naming the file and the first mismatching key
    when the checkpoint holds another model class or other shapes.
    """
    payload = read_checkpoint(path)
    stored_class = payload.get("model_class")
    if stored_class != _class_name(model):
        key = _first_mismatch(payload["model"], model.state_dict())
        raise CheckpointError(f"{path}: holds a {stored_class}, not a {_class_name(model)}"
                              + (f" (first mismatching key: {key})" if key else ""))
    _apply_weights(payload["model"], model, Path(path))
    return dict(payload.get("extra", {}))


def _apply_weights(weights: Mapping[str, torch.Tensor], model: torch.nn.Module, path: Path) -> None:
    key = _first_mismatch(weights, model.state_dict())
    if key is not None:
        stored = tuple(weights[key].shape) if key in weights else "absent"
        wanted = tuple(model.state_dict()[key].shape) if key in model.state_dict() else "absent"
        raise CheckpointError(f"{path}: does not fit {_class_name(model)}: first mismatching key {key} "
                              f"(checkpoint {stored}, model {wanted})")
    model.load_state_dict(weights)


def _first_mismatch(stored: Mapping[str, torch.Tensor], wanted: Mapping[str, torch.Tensor]) -> Optional[str]:
    """First key (in the model's order, then the checkpoint's) absent or of another shape."""
    for key, value in wanted.items():
        if key not in stored or tuple(stored[key].shape) != tuple(value.shape):
            return key
    for key in stored:
        if key not in wanted:
            return key
    return None


def _resume_state(last_path: Path, fingerprint: str, settings: TrainSettings,
                  print_name: str) -> Optional[dict[str, Any]]:
    """The checkpoint to resume from, or ``None`` to start over (reason logged)."""
    if not last_path.exists():
        return None
    try:
        state = read_checkpoint(last_path)
    except CheckpointError as exc:
        log.warning("%s: starting over: %s", print_name, exc)
        return None
    if state.get("fingerprint") != fingerprint:
        log.warning("%s: starting over: %s was written for another model, settings or data",
                    print_name, last_path)
        return None
    history = state["history"]
    if len(history) > settings.epochs:
        log.warning("%s: starting over: %s has %d epochs, more than the %d asked for",
                    print_name, last_path, len(history), settings.epochs)
        return None
    if any(record["lr"] != epoch_lr(settings, i) for i, record in enumerate(history)):
        log.warning("%s: starting over: the learning-rate schedule of %s differs from these settings",
                    print_name, last_path)
        return None
    return state


def _train_epoch(model: torch.nn.Module, loader: DataLoader, loss_fn: LossFn, optimizer: torch.optim.Optimizer,
                 settings: TrainSettings, device: torch.device, bar: tqdm, where: str) -> float:
    model.train()
    total, count = 0.0, 0
    for step, batch in enumerate(loader):
        loss = loss_fn(model, batch, device)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(f"{where}, batch {step + 1}: loss is {value}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _check_gradients_finite(model, f"{where}, batch {step + 1}")
        if settings.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        n = _batch_len(batch)
        total += value * n
        count += n
        bar.update(1)
    return total / count


@torch.no_grad()
def _check_gradients_finite(model: torch.nn.Module, where: str) -> None:
    """Raise :class:`TrainingDiverged` if a gradient holds NaN or inf (it would make every
    weight NaN at the optimiser step). Reads the gradients only, so training is unchanged."""
    grads = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
    if grads and not bool(torch.stack([torch.isfinite(g).all() for _, g in grads]).all()):
        bad = next(n for n, g in grads if not bool(torch.isfinite(g).all()))
        raise TrainingDiverged(f"{where}: the gradient of {bad} is not finite, though the loss is")


@torch.no_grad()
def _check_state_finite(model: torch.nn.Module, where: str) -> None:
    """Raise :class:`TrainingDiverged` if a weight or buffer holds NaN or inf, before such
    a state can be written as a checkpoint."""
    for key, value in model.state_dict().items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise TrainingDiverged(f"{where}: {key} is not finite after the epoch")


@torch.no_grad()
def _evaluate(model: torch.nn.Module, dataset: Dataset, loss_fn: LossFn, settings: TrainSettings,
              device: torch.device, where: str) -> float:
    model.eval()
    total, count = 0.0, 0
    for batch in DataLoader(dataset, batch_size=settings.batch_size, shuffle=False, num_workers=0):
        n = _batch_len(batch)
        total += float(loss_fn(model, batch, device)) * n
        count += n
    if count == 0:
        raise ValueError(f"{where}: the validation set is empty")
    value = total / count
    if not math.isfinite(value):
        raise TrainingDiverged(f"{where}: validation loss is {value}")
    return value


@contextmanager
def _what_is_kept(completed: int) -> Iterator[None]:
    """A :class:`TrainingDiverged` raised within ends by saying what is on disk after
    ``completed`` epochs: their checkpoint, or none."""
    try:
        yield
    except TrainingDiverged as exc:
        kept = ("the checkpoint of the last completed epoch is kept" if completed
                else "no epoch completed, so there is no checkpoint")
        raise TrainingDiverged(f"{exc}; stopped, {kept}") from exc


def _batch_len(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, Mapping):
        return _batch_len(next(iter(batch.values())))
    if isinstance(batch, (list, tuple)):
        return _batch_len(batch[0])
    raise TypeError(f"cannot tell the size of a batch of type {type(batch).__name__}")


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "loader": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["loader"])
    if torch.cuda.is_available() and "cuda" in state and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_history(path: Path, history: list[dict[str, float]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(HISTORY_COLUMNS)
        for record in history:
            writer.writerow(["" if isinstance(record[c], float) and math.isnan(record[c]) else record[c]
                             for c in HISTORY_COLUMNS])


@contextmanager
def _torch_context(settings: TrainSettings) -> Iterator[None]:
    """Deterministic algorithms and the thread count for the duration of training.

    On CUDA, cuBLAS is deterministic only with a fixed workspace, which it reads when the
    process first uses it: set here unless the user has chosen one (no effect on a CPU)."""
    previous = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(), torch.get_num_threads())
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    if settings.num_threads > 0:
        torch.set_num_threads(settings.num_threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.set_num_threads(previous[2])


def _parse_device(spec: str) -> str:
    if spec in ("auto", "cpu", "cuda"):
        return spec
    if spec.startswith("cuda:") and spec[5:].isdigit():
        return "cuda"
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {spec!r}")


def _class_name(model: torch.nn.Module) -> str:
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"
