"""The real corpora behind the `corpus` and `manifest` stages: download, then prepare."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from asdlib.corpora.dcase2020 import download_dcase2020, prepare_dcase2020
from asdlib.corpora.mimii import download_mimii, prepare_mimii

from stages.corpus_params import CorpusParams

DCASE_PARTS = {"dev": "dev", "additional": "eval_train", "eval": "eval_test"}


def download(cfg: CorpusParams) -> Path:
    """Fetch (or find, when already complete) the archives; return the extracted root."""
    target = Path(cfg.download_dir).resolve() / cfg.source
    mirror = cfg.mirror or None
    archive_list = Path(cfg.archive_list).resolve() if cfg.archive_list else None
    if cfg.source == "dcase2020":
        parts = [DCASE_PARTS[s] for s in cfg.dcase2020_subsets]
        return download_dcase2020(target, machine_types=cfg.machine_types, parts=parts, mirror=mirror,
                                  manifest=archive_list)
    return download_mimii(target, machine_types=cfg.machine_types, snr_levels=cfg.mimii_levels,
                          mirror=mirror, manifest=archive_list)


def prepare(cfg: CorpusParams, root: Path) -> pd.DataFrame:
    """The manifest of a downloaded corpus."""
    if cfg.source == "dcase2020":
        return prepare_dcase2020(root, machine_types=cfg.machine_types, path_base=Path.cwd())
    return prepare_mimii(root, machine_types=cfg.machine_types, snr_levels=cfg.mimii_levels,
                         channel=cfg.channel, path_base=Path.cwd())
