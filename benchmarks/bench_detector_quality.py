"""Detector quality at other training settings, on the mixtures of a finished `dvc repro`.

Trains one detector on one input (raw mixtures or MSE output) and one SNR condition
of an existing pipeline run, scores the test clips and prints the mean per-ID AUC
per machine type and overall for every score the detector gives. Use it to ask
"would more epochs, another learning rate or another variant beat the baseline?"
without re-running the pipeline or touching its outputs (checkpoints go to a
temporary folder).

    .venv/bin/python benchmarks/bench_detector_quality.py conformer_ae raw clean \\
        '{"train": {"epochs": 12}, "segments_per_clip": 2}'
    .venv/bin/python benchmarks/bench_detector_quality.py stgram_mfn raw clean \\
        '{"model": {"blocks": "mfn6"}, "train": {"epochs": 6, "lr": 0.001, "cosine_start_epoch": 0}}'
    .venv/bin/python benchmarks/bench_detector_quality.py --pretrain conformer_ae raw clean \\
        '{"normalise": "global", "pretrain": {"epochs": 12, "batch_size": 8}}'

A condition starting with a minus goes after ``--`` (``... --repo DIR -- stgram_mfn mse -6dB``),
or argparse takes it for an option.

Settings are the JSON of a ``detectors.<model>`` section of params.yaml (missing
keys take the library defaults, not params.yaml's). ``--repo`` names the pipeline
checkout (default: this one). The Conformer AE fine-tunes the pipeline's pre-trained
weights unless ``--pretrain`` pre-trains them anew with the given settings.
Last line: ``quality: <model> <input> <condition> <score>=<mean AUC> ... fit=<s> score=<s>``.
``--scores-out FILE`` also writes the scored test clips as a score table (the columns of
``data/scores/<model>/<input>.csv``), so runs of several ``train.seed`` values can be
compared with ``asd compare A1.csv A2.csv ... --vs B1.csv B2.csv ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from asdlib.allocator import keep_freed_memory
from asdlib.detectors.common import Detector
from asdlib.detectors.registry import build_detector
from asdlib.manifest import read_clip, read_manifest
from asdlib.metrics import evaluate_scores, score_table, write_scores
from asdlib.store import read_row

ROOT = Path(__file__).resolve().parents[1]

INPUTS = {"raw": Path("data/mix/manifest.csv"), "mse": Path("data/mse/manifest.csv")}
PRETRAINED = Path("data/models/conformer_pretrained/model.pt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=["dense_ae", "conformer_ae", "stgram_mfn"])
    parser.add_argument("input", choices=sorted(INPUTS))
    parser.add_argument("condition")
    parser.add_argument("settings", nargs="?", default="{}", help="JSON of a detectors.<model> section")
    parser.add_argument("--repo", type=Path, default=ROOT)
    parser.add_argument("--pretrain", action="store_true",
                        help="conformer_ae: pre-train with these settings on the pooled training normals "
                             "(as the pretrain stage does) instead of using the pipeline's weights")
    parser.add_argument("--scores-out", type=Path, metavar="FILE",
                        help="write the scored test clips here (a score table for asd compare)")
    args = parser.parse_args()
    if not args.repo.is_dir():
        parser.error(f"--repo {args.repo}: no such folder")
    detector = _detector(parser, args.model, args.settings)
    keep_freed_memory()  # as the train stages do (asdlib.allocator), so fit times compare
    scores_out = args.scores_out.resolve() if args.scores_out else None
    os.chdir(args.repo)  # manifests name their HDF5 stores relative to the repo
    manifest = read_manifest(INPUTS[args.input])
    rows = manifest[manifest["condition"] == args.condition]
    if rows.empty:
        sys.exit(f"{INPUTS[args.input]}: no clips of condition {args.condition!r}")
    train = rows[(rows["split"] == "train") & (rows["label"] == "normal")]
    test = rows[rows["split"] == "test"]
    with tempfile.TemporaryDirectory(prefix="asd-quality-") as work:
        if args.pretrain:
            corpus = read_manifest(Path("data/manifest.csv"))
            pooled = corpus[(corpus["split"] == "train") & (corpus["label"] == "normal")]
            started = time.perf_counter()
            detector.pretrain(pooled, read_clip, Path(work) / "pretrain")
            print(f"pre-trained on {len(pooled)} clips in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        detector.fit(train, read_row, Path(work) / "fit")
        fitted = time.perf_counter()
        scores = detector.score(test, read_row)
        scored_at = time.perf_counter()
    scored = score_table(test, scores)
    if scores_out is not None:
        write_scores(scores_out, scored)
    columns = [c for c in scores.columns if c.startswith("score_")] or ["score"]
    summary = []
    for column in columns:
        result = evaluate_scores(scored, column)
        overall = result.pop("overall")["auc"]
        print(f"{column:18s} mean AUC {overall:.3f}  "
              + "  ".join(f"{t} {v['mean']['auc']:.3f}" for t, v in result.items()))
        summary.append(f"{column}={overall:.3f}")
    print(f"quality: {args.model} {args.input} {args.condition} {' '.join(summary)} "
          f"fit={fitted - started:.0f} score={scored_at - fitted:.0f}")


def _detector(parser: argparse.ArgumentParser, model: str, settings: str) -> Detector:
    """The detector ``model`` with the JSON ``settings``; bad JSON or settings end the run with a
    usage error (exit 2) naming them, before any data is read."""
    try:
        mapping = json.loads(settings)
    except json.JSONDecodeError as exc:
        parser.error(f"settings: not valid JSON ({exc}): {settings!r}")
    options = {"pretrained_weights": PRETRAINED} if model == "conformer_ae" else {}
    try:
        return build_detector(model, mapping, "settings", **options)
    except ValueError as exc:  # ConfigError, DetectorError
        parser.error(str(exc))


if __name__ == "__main__":
    main()
