"""Stage `manifest`: one table of every clip of the chosen corpus (data/manifest.csv)."""

from __future__ import annotations

import json
from pathlib import Path

from asdlib.audio import SAMPLE_RATE
from asdlib.corpora.dcase_layout import scan_dcase_layout
from asdlib.manifest import write_manifest

from stages.common import DATA, run
from stages.corpus_download import prepare
from stages.corpus_params import corpus_params

OUT = DATA / "manifest.csv"


def main() -> None:
    cfg = corpus_params()
    info = json.loads((DATA / "corpus" / "corpus.json").read_text())
    root = Path(info["root"])
    if cfg.source in ("synthetic", "folder"):
        manifest = scan_dcase_layout(root, dataset=cfg.source, machine_types=cfg.machine_types,
                                     path_base=Path.cwd())
        manifest["channel"] = cfg.channel
    else:
        manifest = prepare(cfg, root)
    if cfg.clip_seconds:
        manifest["num_samples"] = int(round(cfg.clip_seconds * SAMPLE_RATE))
    write_manifest(manifest, OUT)
    counts = manifest.groupby(["machine_type", "split", "label"]).size()
    print(counts.to_string())


if __name__ == "__main__":
    run(main)
