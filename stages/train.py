"""The body of the `train_<model>@<input>` stages: per SNR condition, fit a detector and
score the test clips, `train.workers` conditions at a time in worker processes.

Each detector has its own stage script (`stages/train_dense_ae.py`,
`stages/train_conformer_ae.py`, `stages/train_stgram_mfn.py`) that imports only its
detector, so editing one detector's code re-runs that detector's training alone.
Usage: python -m stages.train_<model> <input>   (raw = the mixtures, mse = MSE output)

Checkpoints live in data/.work/train/ so an interrupted run resumes; the stage's
outputs are the selected model files (data/models/<model>/<input>/<condition>/...)
with the scores of their training normals (normal_scores.csv: evaluate and `asd score`
set decision thresholds from it) and a model card (model_card.json: the detector's
settings and how its input was made, see asdlib.model_card), the scores table
data/scores/<model>/<input>.csv and the per-epoch training history
metrics/training/<model>.<input>.csv (a DVC plot).
"""

from __future__ import annotations

import shutil
import sys
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pandas as pd
import torch
from tqdm.auto import tqdm

from asdlib.conditions import parse_condition
from asdlib.config import parse, to_dict
from asdlib.datasets import LoadFn
from asdlib.detectors.common import Detector, class_columns, unscorable_class
from asdlib.fileio import atomic_path, replace_dir
from asdlib.manifest import SPLITS, read_manifest
from asdlib.metrics import NORMAL_SCORES_FILE, score_table, write_scores
from asdlib.model_card import EXTRACTION_FILE, ModelCard, read_record, write_model_card
from asdlib.parallel import ParallelSettings, parallel_map, usable_cores
from asdlib.progress import bars_off
from asdlib.store import file_digest, read_row

from stages.common import DATA, METRICS, PARAMS_FILE, configure_logging, detector_section, params_section
from stages.work import work_dir

INPUTS = {"raw": DATA / "mix" / "manifest.csv", "mse": DATA / "mse" / "manifest.csv"}


@dataclass(frozen=True)
class TrainParams:
    """conditions: SNR conditions to train and score (each must exist in the mixtures).
    score_splits: manifest splits scored (test; eval for labelled evaluation data).
    workers: processes training conditions at the same time; -1: one per core, at
    most one per condition. Each uses the detector's ``train.num_threads`` torch
    threads, or (cores // workers) when that is 0. On a CPU, two single-thread
    processes do more work than one process of two threads (small models leave
    threads waiting on each other). The weights depend on the thread count in the
    last bits (asdlib.training): pin ``num_threads`` for the same bytes on machines
    with other core counts."""

    conditions: list[str] = field(default_factory=lambda: ["clean", "-6dB", "0dB", "6dB"])
    score_splits: list[str] = field(default_factory=lambda: ["test"])
    workers: int = -1

    def __post_init__(self) -> None:
        if not self.conditions:
            raise ValueError("conditions must list at least one condition")
        for condition in self.conditions:
            parse_condition(condition)
        for name, values in (("conditions", self.conditions), ("score_splits", self.score_splits)):
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"{name}: {twice} listed twice")
        if not self.score_splits:
            raise ValueError(f"score_splits must list at least one of {', '.join(SPLITS)}")
        unknown = sorted(set(self.score_splits) - set(SPLITS))
        if unknown:
            raise ValueError(f"score_splits: {unknown} not a manifest split ({', '.join(SPLITS)})")
        if self.workers == 0 or self.workers < -1:
            raise ValueError(f"workers must be -1 or a positive integer, got {self.workers}")


@dataclass(frozen=True)
class ConditionJob:
    """What one worker needs to fit a detector on one condition and score its test clips."""

    label: str
    detector_cls: Callable[..., Detector]
    settings: Any
    options: dict[str, Any]
    train: pd.DataFrame
    test: pd.DataFrame
    work: Path
    threads: int
    load: LoadFn = read_row


def train_stage(model: str, settings_cls: type, detector_cls: Callable[..., Detector],
                pretrained: Optional[Path] = None) -> None:
    """Fit ``detector_cls`` (settings from ``detectors.<model>``) on the input named in argv.

    ``pretrained``: weights file the detector starts from (its bytes key the checkpoints).
    """
    if len(sys.argv) != 2 or sys.argv[1] not in INPUTS:
        raise ValueError(f"usage: python -m stages.train_{model} {{{','.join(INPUTS)}}}")
    input_name = sys.argv[1]
    cfg = params_section("train", TrainParams)
    detector_params = detector_section(model)
    settings = parse(settings_cls, detector_params, f"{PARAMS_FILE}: detectors.{model}")  # before any work
    options: dict[str, Any] = {"pretrained_weights": pretrained} if pretrained is not None else {}
    extraction = read_record(INPUTS["mse"].parent / EXTRACTION_FILE) if input_name == "mse" else None
    manifest = read_manifest(INPUTS[input_name])
    absent = sorted(set(cfg.conditions) - set(manifest["condition"]))
    if absent:
        raise ValueError(f"{PARAMS_FILE}: train.conditions: {absent} not in {INPUTS[input_name]} "
                         f"(it has {sorted(set(manifest['condition']))})")
    clips = {c: _condition_clips(manifest, c, cfg.score_splits, INPUTS[input_name], detector_cls)
             for c in cfg.conditions}
    models_out = DATA / "models" / model / input_name
    models_tmp = models_out.with_name(f".{input_name}.tmp")  # replaces models_out once complete
    shutil.rmtree(models_tmp, ignore_errors=True)
    workers = min(len(cfg.conditions), ParallelSettings(n_jobs=cfg.workers).workers())
    threads = settings.train.num_threads or max(1, usable_cores() // workers)
    work_root = _work_root(model, input_name, manifest, training_settings(settings, detector_cls), pretrained,
                           threads)
    jobs = [ConditionJob(label=f"{model}/{input_name}/{condition}", detector_cls=detector_cls, settings=settings,
                         options=options, train=train, test=test, work=work_root / condition, threads=threads)
            for condition, (train, test) in clips.items()]
    print(f"{model}/{input_name}: {len(jobs)} conditions, {workers} at a time, "
          f"{threads} thread{'s' if threads > 1 else ''} each")
    results = train_conditions(jobs, workers, desc=f"{model}/{input_name}")
    histories = []
    for condition, job, result in zip(cfg.conditions, jobs, results):
        histories += _histories(job.work, condition)
        _copy_models(job.work, models_tmp / condition)
        write_scores(models_tmp / condition / NORMAL_SCORES_FILE, result.normal)
        write_model_card(models_tmp / condition,
                         ModelCard(model, input_name, condition, to_dict(settings), extraction))
    replace_dir(models_tmp, models_out)
    write_scores(DATA / "scores" / model / f"{input_name}.csv", pd.concat([r.test for r in results]))
    with atomic_path(METRICS / "training" / f"{model}.{input_name}.csv") as tmp:
        pd.concat(histories).to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n")


def _condition_clips(manifest: pd.DataFrame, condition: str, score_splits: list[str], path: Path,
                     detector_cls: type) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The normal training clips and the clips to score (of ``score_splits``) of one condition
    of the manifest at ``path``; either empty, or a clip to score of a class the detector gets
    no training clips of, is an error before any training (not a failure after every
    condition was trained)."""
    rows = manifest[manifest["condition"] == condition]
    train = rows[(rows["split"] == "train") & (rows["label"] == "normal")]
    test = rows[rows["split"].isin(score_splits)]
    if train.empty:
        raise ValueError(f"{path}: condition {condition}: no normal clips of split train to train on")
    if test.empty:
        raise ValueError(f"{path}: condition {condition}: no clips of train.score_splits {score_splits} to score")
    unscorable = unscorable_class(detector_cls, train, test)
    if unscorable is not None:
        name, clip_id = unscorable
        raise ValueError(f"{path}: condition {condition}: {'/'.join(class_columns(detector_cls))} {name} has "
                         f"no normal clips of split train, so {detector_cls.name} cannot score its clips "
                         f"(e.g. {clip_id})")
    return train, test


@dataclass(frozen=True)
class ConditionScores:
    """Score tables of one condition: its test clips, and its training normals (the
    data of decision thresholds, written into the model folder)."""

    test: pd.DataFrame
    normal: pd.DataFrame


def train_conditions(jobs: list[ConditionJob], workers: int, desc: str = "") -> list[ConditionScores]:
    """Each job's scores (job order), ``workers`` jobs at a time in separate processes
    (in this one when 1). Only the parent writes the stage's outputs; a worker writes
    nothing but its own job's checkpoints. With one process, training draws its bars;
    with several, nothing draws bars (their lines would break into each other and into
    this process's bar) and the workers log epoch lines instead."""
    in_worker = workers > 1
    with bars_off() if in_worker else nullcontext():
        return list(parallel_map(partial(_fit_and_score, in_worker=in_worker), jobs,
                                 ParallelSettings(n_jobs=workers), desc=desc, total=len(jobs)))


def _fit_and_score(job: ConditionJob, in_worker: bool = False) -> ConditionScores:
    """Fit one condition's detector (checkpoints under ``job.work``) and score its test clips.

    ``in_worker``: this is one of several processes sharing the terminal. Their bars
    would overwrite each other on one line, so they draw none; training's notes and
    per-epoch lines go to the log instead, each line naming the job. Error messages
    begin with the job's label too.
    """
    torch.set_num_threads(job.threads)
    if in_worker:
        configure_logging(job.label)
        # no bars to keep apart: a thread lock, not tqdm's semaphore, which a worker killed on Ctrl-C
        # leaves behind (and Python warns of at exit, after the stage's last line)
        tqdm.set_lock(threading.RLock())
    print(f"{job.label}: {len(job.train)} training clips, {len(job.test)} test clips", flush=True)
    with _errors_named(job.label), bars_off() if in_worker else nullcontext():
        detector = job.detector_cls(job.settings, **job.options)
        detector.fit(job.train, job.load, job.work)
        result = detector.score(job.test, job.load)
        return ConditionScores(test=score_table(job.test, result),
                               normal=score_table(job.train, detector.training_scores()))


@contextmanager
def _errors_named(label: str) -> Iterator[None]:
    """A ValueError's or OSError's message begins with ``label``: workers train several
    conditions at once, and the detector's messages do not say which condition failed.
    Raised as a plain ValueError or OSError, still a stage's one-line error."""
    try:
        yield
    except OSError as exc:
        raise OSError(f"{label}: {exc}") from exc
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from exc


def training_settings(settings: Any, detector_cls: Callable[..., Detector]) -> dict[str, Any]:
    """The detector settings that reach the weights: all but the detector's
    ``scoring_settings`` (STgram-MFN's choice of scorer and its options), so changing
    those re-runs the stage from the finished checkpoints and only re-scores."""
    scoring = getattr(detector_cls, "scoring_settings", ())
    return {k: v for k, v in to_dict(settings).items() if k not in scoring}


def _work_root(model: str, input_name: str, manifest: pd.DataFrame, training: dict[str, Any],
               pretrained: Optional[Path], threads: int) -> Path:
    """Checkpoint folder keyed by everything the training sees (settings, data, the
    code) and the thread count (the weights' last bits depend on it), so a resume never
    mixes data; folders of other keys for this model and input are removed."""
    parts = [training, INPUTS[input_name].read_bytes().decode(), f"threads={threads}"]
    parts += [file_digest(Path(store)) for store in sorted(set(manifest["store"]))]
    if pretrained is not None and pretrained.exists():
        parts.append(file_digest(pretrained))
    return work_dir(f"train/{model}/{input_name}", *parts)


def _histories(work: Path, condition: str) -> list[pd.DataFrame]:
    """Per-epoch histories of every model trained under ``work`` (one per machine type, or one)."""
    frames = []
    for path in sorted(work.rglob("history.csv")):
        frame = pd.read_csv(path).drop(columns=["seconds"], errors="ignore")
        frame.insert(0, "unit", path.parent.relative_to(work).as_posix())
        frame.insert(0, "condition", condition)
        frames.append(frame)
    return frames


def _copy_models(work: Path, target: Path) -> None:
    """Copy the selected weights (model.pt files), not the resumable checkpoints."""
    for path in sorted(work.rglob("model.pt")):
        dest = target / path.relative_to(work)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)


if __name__ == "__main__":
    sys.exit("stages/train.py is the shared body of the train stages; run "
             "python -m stages.train_{dense_ae,conformer_ae,stgram_mfn} {raw,mse}")
