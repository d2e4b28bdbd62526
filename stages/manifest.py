"""Stage `manifest`: one table of every clip of the chosen corpus (data/manifest.csv).

Refused, naming the files, when the clips break what later stages need
(:func:`asdlib.corpus_checks.check_corpus`): better now than after hours of training.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from asdlib.audio import SAMPLE_RATE
from asdlib.corpora.dcase_layout import GROUND_TRUTH_FILE, scan_dcase_layout
from asdlib.corpus_checks import check_corpus
from asdlib.manifest import write_manifest

from stages.common import DATA, run
from stages.corpus_download import prepare
from stages.corpus_params import CorpusParams, corpus_params

OUT = DATA / "manifest.csv"


def main() -> None:
    cfg = corpus_params()
    root = Path(json.loads((DATA / "corpus" / "corpus.json").read_text())["root"])
    manifest = clip_table(cfg, root)
    check_corpus(manifest, resample=cfg.resample).raise_if_any(str(root))
    write_manifest(manifest, OUT)
    counts = manifest.groupby(["machine_type", "split", "label"]).size()
    print(counts.to_string())


def clip_table(cfg: CorpusParams, root: Path) -> pd.DataFrame:
    """The manifest of the chosen corpus at ``root``, its clips read at corpus.clip_seconds when set."""
    if cfg.source in ("synthetic", "folder"):
        manifest = scan_dcase_layout(root, dataset=cfg.source, machine_types=cfg.machine_types,
                                     path_base=Path.cwd())
        manifest["channel"] = cfg.channel
    else:
        manifest = prepare(cfg, root)
    if cfg.clip_seconds:
        manifest["num_samples"] = int(round(cfg.clip_seconds * SAMPLE_RATE))
    return manifest


def source_files(cfg: CorpusParams, root: Path) -> list[Path]:
    """The files the manifest is made from: its clips, and the DCASE 2020 ground truth its
    evaluation labels come from when the download holds one."""
    files = [Path(path) for path in clip_table(cfg, root)["path"]]
    truth = root / GROUND_TRUTH_FILE
    return files + [truth] if cfg.source == "dcase2020" and truth.is_file() else files


if __name__ == "__main__":
    run(main)
