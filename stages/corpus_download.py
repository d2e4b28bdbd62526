"""The real corpora behind the `corpus` and `manifest` stages: download, then prepare."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from asdlib.corpora.dcase2020 import download_dcase2020, prepare_dcase2020
from asdlib.corpora.dcase_layout import absolute
from asdlib.corpora.mimii import download_mimii, prepare_mimii

from stages.corpus_params import CorpusParams

DCASE_PARTS = {"dev": "dev", "additional": "eval_train", "eval": "eval_test"}
# Where each subset's clips lie under the download root: (section folder, split folders).
DCASE_FOLDERS = {"dev": ("dev_data", ("train", "test")), "additional": ("eval_data", ("train",)),
                 "eval": ("eval_data", ("test",))}


def download(cfg: CorpusParams) -> Path:
    """Fetch (or find, when already complete) the archives; return the extracted root."""
    target = absolute(Path(cfg.download_dir)) / cfg.source  # links not followed: see stages.corpus
    mirror = cfg.mirror or None
    archive_list = Path(cfg.archive_list).resolve() if cfg.archive_list else None
    if cfg.source == "dcase2020":
        parts = [DCASE_PARTS[s] for s in cfg.dcase2020_subsets]
        return download_dcase2020(target, machine_types=cfg.machine_types, parts=parts, mirror=mirror,
                                  manifest=archive_list)
    return download_mimii(target, machine_types=cfg.machine_types, snr_levels=cfg.mimii_levels,
                          mirror=mirror, manifest=archive_list)


def prepare(cfg: CorpusParams, root: Path) -> pd.DataFrame:
    """The manifest of a downloaded corpus: only the chosen subsets, even when the download
    folder holds others from earlier runs."""
    if cfg.source == "dcase2020":
        manifest = prepare_dcase2020(root, machine_types=cfg.machine_types, path_base=Path.cwd())
        keep = manifest["path"].map(lambda path: _in_subsets(path, cfg.dcase2020_subsets))
        return manifest[keep].reset_index(drop=True)
    return prepare_mimii(root, machine_types=cfg.machine_types, snr_levels=cfg.mimii_levels,
                         channel=cfg.channel, path_base=Path.cwd())


def _in_subsets(path: str, subsets: list[str]) -> bool:
    """True when a DCASE clip (``.../<section>/<type>/<train|test>/<file>``) is in one of ``subsets``."""
    parts = Path(path).parts
    return any(parts[-4] == DCASE_FOLDERS[s][0] and parts[-2] in DCASE_FOLDERS[s][1] for s in subsets)
