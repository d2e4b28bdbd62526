"""Stage `corpus`: make the chosen corpus available and describe it in data/corpus/corpus.json.

synthetic: generate the built-in corpus into data/corpus (DCASE 2020 layout).
dcase2020 / mimii: download (checksummed, resumable, idempotent) into
corpus.download_dir, outside the DVC cache; folder: point at a folder on disk.

corpus.json holds the source and the root (relative to the working folder when inside
it, so that checkouts at other paths agree). DVC tracks the synthetic corpus's files
itself; for the others, outside DVC, it also holds the identity of the files the manifest
is made from (:func:`asdlib.corpus_checks.content_identity`): `dvc repro -f corpus` after
changing them changes corpus.json, and what depends on it re-runs at the next `dvc repro`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from asdlib.corpora.dcase_layout import absolute, manifest_path
from asdlib.corpora.synthetic import generate_synthetic
from asdlib.corpus_checks import content_identity
from asdlib.fileio import replace_dir, write_json
from asdlib.parallel import ParallelSettings

from stages.common import DATA, params_section, run
from stages.corpus_download import download
from stages.corpus_params import CorpusParams, corpus_params
from stages.manifest import source_files

OUT = DATA / "corpus"


def main() -> None:
    cfg = corpus_params()
    parallel = params_section("parallel", ParallelSettings)
    tmp = OUT.with_name(".corpus.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        root = provide(cfg, parallel, tmp)
        write_json(tmp / "corpus.json", describe(cfg, root, parallel))
        replace_dir(tmp, OUT)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # after a failure: no half-built folder left behind


def provide(cfg: CorpusParams, parallel: ParallelSettings, tmp: Path) -> Path:
    """Make the corpus available (the synthetic one generated into ``tmp``); return its root."""
    if cfg.source == "synthetic":
        generate_synthetic(tmp, cfg.synthetic_settings(), n_jobs=parallel.workers())
        return OUT
    if cfg.source == "folder":
        root = absolute(Path(cfg.folder))  # a link into the checkout stays a relative root
        if not root.is_dir():
            raise FileNotFoundError(f"params.yaml: corpus.folder: {root} is not a folder")
        return root
    return download(cfg)


def describe(cfg: CorpusParams, root: Path, parallel: ParallelSettings) -> dict[str, Any]:
    """The content of corpus.json: source, root, and for a corpus outside DVC its content identity."""
    info: dict[str, Any] = {"source": cfg.source, "root": manifest_path(root, absolute(Path.cwd()))}
    if cfg.source != "synthetic":
        info["content"] = content_identity(root, source_files(cfg, root), parallel.workers())
    return info


if __name__ == "__main__":
    run(main)
