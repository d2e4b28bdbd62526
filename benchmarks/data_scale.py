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

With no ``--set`` it retrains on the default corpus. Prints each detector's
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

from ruamel.yaml import YAML

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import copy_repo  # a sibling script, not a package module

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("dense_ae", "conformer_ae", "stgram_mfn")


def set_key(params: dict[str, Any], dotted: str, value: Any) -> None:
    """params[a][b][c] = value for ``a.b.c``; every key must exist already (a typo is an
    error, not a new setting that nothing reads)."""
    *parents, last = dotted.split(".")
    node: Any = params
    for key in [*parents, last]:
        if not isinstance(node, dict) or key not in node:
            sys.exit(f"--set {dotted}: params.yaml has no {key!r} there")
        parent, node = node, node[key]
    parent[last] = value


def edit_params(repo: Path, assignments: list[str], condition: str) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` assignments to the copy's params.yaml; return the edited params."""
    yaml = YAML()
    path = repo / "params.yaml"
    params = yaml.load(path.read_text())
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep:
            sys.exit(f"--set {assignment}: write KEY=VALUE")
        set_key(params, key, YAML(typ="safe").load(text))
    set_key(params, "mix.conditions", [condition])
    set_key(params, "train.conditions", [condition])
    with path.open("w") as out:
        yaml.dump(params, out)
    return params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="a params.yaml value to change in the copy (repeatable)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--condition", default="clean", help="SNR condition mixed and scored")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    if args.keep and args.keep.exists() and any(args.keep.iterdir()):
        sys.exit(f"--keep {args.keep}: not empty; name a new folder")
    repo = args.keep or Path(tempfile.mkdtemp(prefix="asd-scale-"))
    repo.mkdir(parents=True, exist_ok=True)
    copy_repo(repo)
    params = edit_params(repo, args.assignments, args.condition)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    made = subprocess.run(["dvc", "repro", "mix"], cwd=repo, env=env, capture_output=True, text=True)
    if made.returncode:
        sys.exit(f"dvc repro mix failed in {repo}:\n{made.stdout[-3000:]}{made.stderr[-3000:]}")
    synthetic = params["corpus"]["synthetic"]
    print(f"corpus: {synthetic['ids_per_type']} IDs per type, {synthetic['train_clips_per_id']} training "
          f"clips per ID of {synthetic['clip_seconds']} s; condition {args.condition}", flush=True)
    summary = []
    for model in args.models:
        settings = json.loads(json.dumps(params["detectors"][model]))  # plain dicts and lists
        options = ["--pretrain"] if model == "conformer_ae" else []
        command = [sys.executable, str(ROOT / "benchmarks" / "bench_detector_quality.py"), "--repo", str(repo),
                   *options, "--", model, "raw", args.condition, json.dumps(settings)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:
            sys.exit(f"{model} failed:\n{result.stderr[-3000:]}")
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        print("\n".join(lines), flush=True)
        # last line: quality: <model> raw <condition> <score>=<AUC> ... fit=<s> score=<s>
        summary += [f"{model}.{pair}" for pair in lines[-1].split()[4:-2]]
    print(f"data_scale: {' '.join(args.assignments) or 'defaults'} {' '.join(summary)}")
    if not args.keep:
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
