"""Retrain detectors with several training seeds on a finished run's mixtures.

One training run is one draw of the training randomness (initial weights, batch
order, validation split); for small CPU trainings that draw moves a detector's
mean AUC by a few hundredths, as much as the test set's own noise. This script
retrains each named detector on each input and condition with every seed (as
``params.yaml`` configures it, but for ``train.seed``), through
``bench_detector_quality.py``, and writes one score table per run:

    <out>/<model>.<input>.<condition>.seed<k>.csv

so that ``asd compare`` can judge a difference against both kinds of noise::

    .venv/bin/python benchmarks/seed_study.py --out /tmp/seeds --seeds 1 2 3 4 \\
        --models dense_ae conformer_ae --inputs raw --conditions clean
    asd compare /tmp/seeds/conformer_ae.raw.clean.seed*.csv \\
        --vs /tmp/seeds/dense_ae.raw.clean.seed*.csv

To compare another run's MSE output or mixtures at the same detector settings, point
``--repo`` at a checkout of it (e.g. a git worktree of an experiment, after ``dvc checkout``)
and ``--params`` at this checkout's params.yaml: the experiment may predate today's settings.

A condition starting with a minus needs the ``=`` form (``--conditions=-6dB``), or
argparse takes it for an option. A table that already exists is kept (the study resumes
where it stopped; each kept table is named). Last line:
``seed_study: <n> tables in <out> (<trained> trained now, <kept> already there)``.

The Conformer AE fine-tunes the pipeline's pre-trained weights with each seed; with
``--pretrain`` it pre-trains anew with each seed first (``pretrain.seed`` = the seed; on
the pooled training normals, the default ``pretrain.corpus``; about a minute more per run)
and names its tables ``conformer_ae+pretrain.<input>...``, so the runs redraw the
pre-training's randomness too. The pipeline's own way to the same tables, every condition
at once, is one experiment per seed (``dvc exp run -S detectors.<model>.train.seed=N``;
README, *Comparing experiments*).
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("dense_ae", "conformer_ae", "stgram_mfn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder of the score tables")
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--inputs", nargs="+", choices=["raw", "mse"], default=["raw"])
    parser.add_argument("--conditions", nargs="+", default=["clean"])
    parser.add_argument("--repo", type=Path, default=ROOT, help="pipeline checkout (default: this one)")
    parser.add_argument("--params", type=Path, help="params file whose detectors section to train with "
                                                    "(default: the checkout's params.yaml)")
    parser.add_argument("--pretrain", action="store_true",
                        help="conformer_ae only: pre-train anew with each seed as well")
    args = parser.parse_args()
    if args.pretrain and set(args.models) != {"conformer_ae"}:
        parser.error("--pretrain needs --models conformer_ae (only it is pre-trained)")
    if not args.repo.is_dir():
        parser.error(f"--repo {args.repo}: no such folder")
    if args.params is None and not (args.repo / "params.yaml").is_file():
        parser.error(f"--repo {args.repo}: no params.yaml there (not a checkout of this pipeline)")
    if args.params is not None and not args.params.is_file():
        parser.error(f"--params {args.params}: no such file")
    params = args.params or args.repo / "params.yaml"
    detectors = yaml.safe_load(params.read_text()).get("detectors", {})
    trained = kept = 0
    for condition in args.conditions:
        for input_name in args.inputs:
            for model in args.models:
                for seed in args.seeds:
                    name = f"{model}+pretrain" if args.pretrain else model
                    table = args.out / f"{name}.{input_name}.{condition}.seed{seed}.csv"
                    if table.exists():
                        print(f"seed {seed}: {model} {input_name} {condition}: {table} already there, kept",
                              flush=True)
                        kept += 1
                        continue
                    settings = copy.deepcopy(detectors.get(model, {}))
                    settings.setdefault("train", {})["seed"] = seed
                    options = ["--repo", str(args.repo), "--scores-out", str(table.resolve())]
                    if args.pretrain:
                        settings.setdefault("pretrain", {})["seed"] = seed
                        options.append("--pretrain")
                    command = [sys.executable, str(ROOT / "benchmarks" / "bench_detector_quality.py"),
                               *options, "--", model, input_name, condition, json.dumps(settings)]
                    result = subprocess.run(command, capture_output=True, text=True)
                    if result.returncode != 0:
                        sys.exit(f"{model} {input_name} {condition} seed {seed} failed:\n{result.stderr}")
                    print(f"seed {seed}: {result.stdout.strip().splitlines()[-1]}", flush=True)
                    trained += 1
    print(f"seed_study: {trained + kept} tables in {args.out} ({trained} trained now, {kept} already there)")


if __name__ == "__main__":
    main()
