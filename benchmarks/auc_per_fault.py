"""AUC per fault kind of every detector, on the built-in synthetic corpus of a finished run.

The synthetic generator knows the fault of each anomalous test clip
(:func:`asdlib.corpora.synthetic.fault_of_test_clip`), so a detector's results can
be broken down: per machine ID, the AUC of its normal test clips against its
anomalous clips of one fault kind, then the mean over the IDs that have that kind.
It answers "which faults does this detector (or MSE) catch?", which the per-ID
metrics of `dvc repro` cannot.

    .venv/bin/python benchmarks/auc_per_fault.py                 # raw input, clean
    .venv/bin/python benchmarks/auc_per_fault.py --input mse --condition=-6dB

Reads params.yaml (corpus section) and data/scores/*/<input>.csv of ``--repo``
(default: this checkout). Prints one row per fault kind (its machine types and
anomalous clip count) and one column per detector score (the extra scorers
included, except a copy of a model's own score). Few clips carry each kind (5-32 on the
default corpus), so differences under ~0.1 between kinds are noise.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import roc_auc_score

from asdlib.config import parse
from asdlib.corpora.synthetic import SyntheticSettings, fault_of_test_clip
from asdlib.metrics import read_scores
from asdlib.reporting import reported_scores

ROOT = Path(__file__).resolve().parents[1]


def synthetic_settings(params_file: Path) -> SyntheticSettings:
    """The generator settings of a run, as its corpus stage parsed them."""
    corpus = yaml.safe_load(params_file.read_text())["corpus"]
    if corpus.get("source", "synthetic") != "synthetic":
        sys.exit(f"{params_file}: corpus.source is {corpus['source']!r}; fault kinds are known only for "
                 f"the built-in synthetic corpus")
    settings = parse(SyntheticSettings, corpus.get("synthetic", {}), f"{params_file}: corpus.synthetic")
    return dataclasses.replace(settings, machine_types=list(corpus["machine_types"]))


def auc_per_fault(scores: pd.DataFrame, column: str) -> pd.Series:
    """Mean over machine IDs of AUC(normal clips, anomalous clips of one fault kind)."""
    per_kind: dict[str, list[float]] = {}
    for _, rows in scores.groupby(["machine_type", "machine_id"], sort=True):
        normal = rows[rows["fault"] == ""]
        for kind, faulty in rows[rows["fault"] != ""].groupby("fault"):
            y = np.r_[np.zeros(len(normal)), np.ones(len(faulty))]
            per_kind.setdefault(str(kind), []).append(
                roc_auc_score(y, np.r_[normal[column].to_numpy(), faulty[column].to_numpy()]))
    return pd.Series({kind: float(np.mean(aucs)) for kind, aucs in per_kind.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default="raw", choices=["raw", "mse"])
    parser.add_argument("--condition", default="clean")
    parser.add_argument("--repo", type=Path, default=ROOT)
    args = parser.parse_args()
    if not (args.repo / "params.yaml").is_file():
        parser.error(f"--repo {args.repo}: no params.yaml there (not a checkout of this pipeline)")
    settings = synthetic_settings(args.repo / "params.yaml")
    paths = sorted((args.repo / "data" / "scores").glob(f"*/{args.input}.csv"))
    if not paths:
        sys.exit(f"{args.repo / 'data' / 'scores'}: no */{args.input}.csv (run `dvc repro` first)")
    table, kinds, fault_kind = {}, None, {}  # fault_kind: source clip id -> kind ("" when normal)
    for path in paths:
        scores = read_scores(path)
        scores = scores[(scores["condition"] == args.condition) & (scores["split"] == "test")]
        if scores.empty:
            sys.exit(f"{path}: no test clips of condition {args.condition!r}")
        for machine_type, clip in zip(scores["machine_type"], scores["source_clip_id"]):
            if clip not in fault_kind:  # every detector scores the same clips: look each up once
                fault = fault_of_test_clip(machine_type, clip, settings)
                fault_kind[clip] = "" if fault is None else fault.kind
        scores = scores.assign(fault=scores["source_clip_id"].map(fault_kind))
        if kinds is None:
            anomalous = scores[scores["fault"] != ""]
            kinds = anomalous.groupby("fault").agg(types=("machine_type", lambda t: ",".join(sorted(set(t)))),
                                                   clips=("clip_id", "size"))
        for name, column in reported_scores(scores, path.parent.name).items():
            table[name] = auc_per_fault(scores, column)
    result = kinds.join(pd.DataFrame(table)).sort_index()
    print(f"AUC per fault kind (mean over machine IDs), input {args.input}, condition {args.condition}")
    print(result.to_string(float_format=lambda v: f"{v:.2f}"))
    means = pd.DataFrame(table).mean()
    print("mean over fault kinds: " + ", ".join(f"{name} {value:.3f}" for name, value in means.items()))


if __name__ == "__main__":
    main()
