"""Time the default pipeline from scratch, then a no-op rerun, in a temporary copy of the repo.

Usage: python benchmarks/bench_pipeline.py [--keep DIR]
Prints the wall time of each stage, of the whole first `dvc repro`, of a second
`dvc repro` (which must do nothing), the mean AUC of every model x input x
condition, and which outputs have other hashes than in this checkout's `dvc.lock`
(none, when the code and params are committed and deterministic). Last line:
`pipeline: first=<s> second=<s> dense_ae_clean_auc=<x> outputs_as_committed=<n>/<total>`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def copy_repo(dest: Path) -> None:
    names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\n")
    for name in filter(None, names):
        if (ROOT / name).is_file() and not name.startswith(("data/", "metrics/")):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "b"]):
        subprocess.run(["git", *args], cwd=dest, check=True)


def repro(repo: Path) -> tuple[float, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    started = time.perf_counter()
    proc = subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines, stage, stage_started = [], None, started
    for line in proc.stdout:
        lines.append(line)
        match = re.match(r"Running stage '(.+)':", line)
        if match:
            now = time.perf_counter()
            if stage:
                print(f"  {stage:28s} {now - stage_started:7.1f} s", flush=True)
            stage, stage_started = match.group(1), now
    proc.wait()
    elapsed = time.perf_counter() - started
    if stage:
        print(f"  {stage:28s} {time.perf_counter() - stage_started:7.1f} s", flush=True)
    if proc.returncode:
        sys.exit("dvc repro failed:\n" + "".join(lines[-40:]))
    return elapsed, "".join(lines)


def output_hashes(lock: Path) -> dict[str, str]:
    """md5 of every stage output recorded in a dvc.lock."""
    stages = yaml.safe_load(lock.read_text())["stages"]
    return {out["path"]: out.get("md5", "") for stage in stages.values() for out in stage.get("outs", [])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    args = parser.parse_args()
    repo = args.keep or Path(tempfile.mkdtemp(prefix="asd-bench-"))
    repo.mkdir(parents=True, exist_ok=True)
    copy_repo(repo)
    print(f"first dvc repro in {repo} ({os.cpu_count()} cores):")
    first, _ = repro(repo)
    second, log = repro(repo)
    nothing = "Running stage" not in log
    metrics = json.loads((repo / "metrics" / "asd.json").read_text())
    print("mean AUC / pAUC over machine types:")
    for model, by_input in sorted(metrics.items()):
        for input_name, by_condition in sorted(by_input.items()):
            cells = "  ".join(f"{c}: {v['overall']['auc']:.3f}/{v['overall']['pauc']:.3f}"
                              for c, v in by_condition.items())
            print(f"  {model:26s} {input_name:4s} {cells}")
    print(f"first repro {first:.0f} s; second repro {second:.1f} s ({'did nothing' if nothing else 'RAN STAGES'})")
    ours, committed = output_hashes(repo / "dvc.lock"), output_hashes(ROOT / "dvc.lock")
    differing = sorted(path for path in committed.keys() | ours.keys() if committed.get(path) != ours.get(path))
    print(f"outputs with other hashes than in {ROOT / 'dvc.lock'}: {', '.join(differing) or 'none'}")
    dense = metrics["dense_ae"]["raw"]["clean"]["overall"]["auc"]
    print(f"pipeline: first={first:.0f} second={second:.1f} dense_ae_clean_auc={dense:.3f} "
          f"outputs_as_committed={len(committed.keys() | ours.keys()) - len(differing)}/"
          f"{len(committed.keys() | ours.keys())}")
    if not args.keep:
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
