"""Would the detectors rank otherwise with more data? Train them on a bigger built-in corpus.

Copies this checkout (as bench_pipeline.py does) into a scratch folder, changes its
params.yaml with ``--set KEY=VALUE`` (dotted keys, YAML values), keeps only the scored
condition in ``mix.conditions`` and ``train.conditions``, runs ``dvc repro mix`` there
(corpus, noise and mixtures; no MSE) and trains every named detector on the raw
mixtures through ``bench_detector_quality.py``, each with the copy's
``detectors.<model>`` settings. The Conformer AE is pre-trained anew on the copy's
pooled training normals (the pretrain stage's default corpus).

    .venv/bin/python benchmarks/data_scale.py --set corpus.synthetic.train_clips_per_id=160
    .venv/bin/python benchmarks/data_scale.py --set corpus.synthetic.clip_seconds=10 \\
        --set detectors.conformer_ae.segments_per_clip=5   # the Conformer AE sees every 2 s
    .venv/bin/python benchmarks/data_scale.py --set corpus.synthetic.train_clips_per_id=640 \\
        --models dense_ae stgram_mfn

With no ``--set`` it retrains on the default corpus. The ``KEY=VALUE`` form, the keys (each
must be in params.yaml already) and the condition are checked before anything is copied;
the scratch copy is removed when the run ends, failed or not, unless ``--keep`` named its
folder. Prints each detector's
``bench_detector_quality`` result; last line:
``data_scale: <settings> <model>.<score>=<mean AUC> ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError

from asdlib.conditions import parse_condition

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import copy_repo  # a sibling script, not a package module

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("dense_ae", "conformer_ae", "stgram_mfn")


def set_key(params: dict[str, Any], dotted: str, value: Any) -> None:
    """params[a][b][c] = value for ``a.b.c``; every key must exist already (a typo is a
    ValueError naming it, not a new setting that nothing reads)."""
    *parents, last = dotted.split(".")
    node: Any = params
    for key in [*parents, last]:
        if not isinstance(node, dict) or key not in node:
            raise ValueError(f"params.yaml has no {key!r} there")
        parent, node = node, node[key]
    parent[last] = value


def edit_params(params: dict[str, Any], assignments: list[str], condition: str) -> None:
    """Apply ``KEY=VALUE`` assignments and score only ``condition``; a ValueError names the
    assignment or condition that cannot be applied."""
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep:
            raise ValueError(f"--set {assignment}: write KEY=VALUE")
        try:
            value = YAML(typ="safe").load(text)
        except YAMLError:
            raise ValueError(f"--set {assignment}: {text!r} is not a YAML value") from None
        try:
            set_key(params, key, value)
        except ValueError as exc:
            raise ValueError(f"--set {assignment}: {exc}") from None
    try:
        parse_condition(condition)
    except ValueError as exc:
        raise ValueError(f"--condition {condition}: {exc}") from None
    set_key(params, "mix.conditions", [condition])
    set_key(params, "train.conditions", [condition])


def run(repo: Path, params: dict[str, Any], models: list[str], condition: str, label: str) -> None:
    """Mix ``condition`` in the prepared copy ``repo``, train and score each model there and print
    the results; a failure ends the run with its output."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    made = subprocess.run(["dvc", "repro", "mix"], cwd=repo, env=env, capture_output=True, text=True)
    if made.returncode:
        sys.exit(f"dvc repro mix failed in {repo}:\n{made.stdout[-3000:]}{made.stderr[-3000:]}")
    synthetic = params["corpus"]["synthetic"]
    print(f"corpus: {synthetic['ids_per_type']} IDs per type, {synthetic['train_clips_per_id']} training "
          f"clips per ID of {synthetic['clip_seconds']} s; condition {condition}", flush=True)
    summary = []
    for model in models:
        settings = json.loads(json.dumps(params["detectors"][model]))  # plain dicts and lists
        options = ["--pretrain"] if model == "conformer_ae" else []
        command = [sys.executable, str(ROOT / "benchmarks" / "bench_detector_quality.py"), "--repo", str(repo),
                   *options, "--", model, "raw", condition, json.dumps(settings)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:
            sys.exit(f"{model} failed:\n{result.stderr[-3000:]}")
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        print("\n".join(lines), flush=True)
        # last line: quality: <model> raw <condition> <score>=<AUC> ... fit=<s> score=<s>
        summary += [f"{model}.{pair}" for pair in lines[-1].split()[4:-2]]
    print(f"data_scale: {label} {' '.join(summary)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="a params.yaml value to change in the copy (repeatable)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--condition", default="clean",
                        help="SNR condition mixed and scored (a negative one: --condition=-6dB)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    if args.keep and args.keep.exists() and (not args.keep.is_dir() or any(args.keep.iterdir())):
        parser.error(f"--keep {args.keep}: not an empty folder; name a new one")
    yaml = YAML()
    params = yaml.load((ROOT / "params.yaml").read_text())  # the copy's: copy_repo copies this checkout
    try:
        edit_params(params, args.assignments, args.condition)
    except ValueError as exc:
        parser.error(str(exc))
    repo = args.keep or Path(tempfile.mkdtemp(prefix="asd-scale-"))
    try:
        repo.mkdir(parents=True, exist_ok=True)
        copy_repo(repo)
        with (repo / "params.yaml").open("w") as out:
            yaml.dump(params, out)
        run(repo, params, args.models, args.condition, " ".join(args.assignments) or "defaults")
    finally:
        if not args.keep:
            shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
