"""Stage `pretrain`: pre-train the conformer autoencoder on a generic corpus.

The generic corpus is AudioSet music (label /m/04rlf) when `pretrain.corpus` is
`audioset_music` and `pretrain.audioset_dir` holds prepared clips; otherwise
(`pooled`, the default) the clean normal training clips of all machine types
pooled together, the documented fallback when no music is at hand. Writes
data/models/conformer_pretrained/model.pt; `train_conformer_ae` fine-tunes it
per machine type (or ignores it with `detectors.conformer_ae.init: scratch`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from asdlib.config import parse
from asdlib.corpora.audioset_music import prepare_audioset_music
from asdlib.detectors.conformer_ae import ConformerAEDetector, ConformerAEDetectorSettings
from asdlib.fileio import replace_dir
from asdlib.manifest import read_clip, read_manifest
from asdlib.store import file_digest

from stages.common import CONFORMER_PRETRAINED, DATA, PARAMS_FILE, detector_section, params_section, run
from stages.work import work_dir


@dataclass(frozen=True)
class PretrainParams:
    corpus: Literal["pooled", "audioset_music"] = "pooled"
    audioset_dir: str = ""
    audioset_lists_dir: str = ""

    def __post_init__(self) -> None:
        if self.corpus == "audioset_music" and not (self.audioset_dir and self.audioset_lists_dir):
            raise ValueError("audioset_dir (music clips named by YouTube id and start) and "
                             "audioset_lists_dir (asd download audioset_music) must be set "
                             "when corpus is audioset_music")


def main() -> None:
    cfg = params_section("pretrain", PretrainParams)
    detector_params = detector_section("conformer_ae")
    detector = ConformerAEDetector(parse(ConformerAEDetectorSettings, detector_params,
                                         f"{PARAMS_FILE}: detectors.conformer_ae"))
    rows = _generic_rows(cfg)
    print(f"pre-training on {len(rows)} clips ({cfg.corpus})")
    identity = [(cid, file_digest(path)) for cid, path in zip(rows["clip_id"], rows["path"])]
    work = work_dir("pretrain", detector_params, cfg.corpus, identity)
    weights = detector.pretrain(rows, _read, work)
    tmp = CONFORMER_PRETRAINED.with_name(".conformer_pretrained.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copyfile(weights, tmp / "model.pt")
    history = pd.read_csv(weights.parent / "history.csv").drop(columns=["seconds"], errors="ignore")
    history.to_csv(tmp / "history.csv", index=False, float_format="%.6g", lineterminator="\n")  # no timings: same bytes
    replace_dir(tmp, CONFORMER_PRETRAINED)


def _generic_rows(cfg: PretrainParams) -> pd.DataFrame:
    if cfg.corpus == "audioset_music":
        return prepare_audioset_music(Path(cfg.audioset_dir), lists_dir=Path(cfg.audioset_lists_dir))
    manifest = read_manifest(DATA / "manifest.csv")
    return manifest[(manifest["split"] == "train") & (manifest["label"] == "normal")]


def _read(row: pd.Series) -> np.ndarray:
    """A clip from its file; music comes at any rate and is resampled."""
    return read_clip(row, resample=row["dataset"] == "audioset_music")


if __name__ == "__main__":
    run(main)
