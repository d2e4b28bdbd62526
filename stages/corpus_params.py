"""The `corpus` section of params.yaml: which corpus, which machine types, where."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from asdlib.config import ConfigError, parse
from asdlib.corpora.synthetic import SyntheticSettings

from stages.common import PARAMS_FILE, params_section


@dataclass(frozen=True)
class CorpusParams:
    """source: synthetic (built in), dcase2020 / mimii (downloaded into download_dir,
    or read from there when already present), or folder (any folder in the DCASE
    2020 Task 2 layout, e.g. one you already have). archive_list: an archives.json
    replacing the packaged one (a mirror whose files have other checksums).
    clip_seconds: crop or zero-pad every clip to this length when it is read
    (0: as the corpus has it; DCASE 2020 and MIMII clips are read as 10 s)."""

    source: Literal["synthetic", "dcase2020", "mimii", "folder"] = "synthetic"
    machine_types: list[str] = field(default_factory=lambda: ["fan", "pump", "slider", "valve"])
    folder: str = ""
    download_dir: str = "downloads"
    mirror: str = ""
    archive_list: str = ""
    channel: int = 0
    resample: bool = False
    clip_seconds: float = 0.0
    mimii_levels: list[str] = field(default_factory=lambda: ["-6dB", "0dB", "6dB"])
    dcase2020_subsets: list[Literal["dev", "additional", "eval"]] = field(default_factory=lambda: ["dev"])
    synthetic: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.machine_types:
            raise ValueError("machine_types must name at least one machine type")
        if self.source == "folder" and not self.folder:
            raise ValueError("folder must be set when source is folder")
        if self.channel < 0:
            raise ValueError(f"channel must be >= 0, got {self.channel}")
        if self.clip_seconds < 0:
            raise ValueError(f"clip_seconds must be >= 0 (0: the corpus's own length), got {self.clip_seconds}")
        twice = sorted({level for level in self.mimii_levels if self.mimii_levels.count(level) > 1})
        if twice:
            raise ValueError(f"mimii_levels: {twice} listed twice")

    def synthetic_settings(self) -> SyntheticSettings:
        """The generator settings, with the machine types of this section."""
        where = f"{PARAMS_FILE}: corpus.synthetic"
        if "machine_types" in self.synthetic:
            raise ConfigError(f"{where}.machine_types: set corpus.machine_types instead")
        settings = parse(SyntheticSettings, self.synthetic, where)
        try:
            return dataclasses.replace(settings, machine_types=list(self.machine_types))
        except ValueError as exc:
            raise ConfigError(f"{PARAMS_FILE}: corpus.machine_types: "
                              f"{str(exc).removeprefix('machine_types: ')}") from exc


def corpus_params() -> CorpusParams:
    """The validated `corpus` section (nested synthetic settings included)."""
    cfg = params_section("corpus", CorpusParams)
    if cfg.source == "synthetic":
        cfg.synthetic_settings()
    else:  # still reject typos in the unused section
        parse(SyntheticSettings, cfg.synthetic, f"{PARAMS_FILE}: corpus.synthetic")
    return cfg
