"""Stage `check_params`: parse every section of params.yaml before any other stage runs.

Each stage parses its own section again when it runs; this stage exists so that a
typo anywhere (say in `evaluate`) stops `dvc repro` before hours of extraction.
Its output never changes, so re-running it invalidates nothing downstream.
"""

from __future__ import annotations

from asdlib.config import ConfigError, load_yaml
from asdlib.detectors.registry import DETECTORS, build_detector
from asdlib.extraction import MseInput
from asdlib.fileio import write_text
from asdlib.mixing import MixSettings
from asdlib.noise_bank import NoiseBankSettings
from asdlib.parallel import ParallelSettings
from asdlib.snr_estimation import SnrEstimatorSettings

from stages.common import DATA, PARAMS_FILE, params_section, run
from stages.corpus_params import corpus_params
from stages.evaluate import EvaluateParams
from stages.pretrain import PretrainParams
from stages.train import TrainParams

SECTIONS = {
    "parallel": ParallelSettings,
    "noise": NoiseBankSettings,
    "mix": MixSettings,
    "snr": SnrEstimatorSettings,
    "mse": MseInput,
    "pretrain": PretrainParams,
    "train": TrainParams,
    "evaluate": EvaluateParams,
}
OUT = DATA / "params_checked.txt"


def main() -> None:
    params = load_yaml(PARAMS_FILE)
    known = {"corpus", "detectors", *SECTIONS}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ConfigError(f"{PARAMS_FILE}: {unknown[0]}: unknown section (known: {', '.join(sorted(known))})")
    corpus_params()
    for name, cls in SECTIONS.items():
        params_section(name, cls)
    detectors = params.get("detectors") or {}
    for name in sorted(set(detectors) - set(DETECTORS)):
        raise ConfigError(f"{PARAMS_FILE}: detectors.{name}: unknown detector (known: {', '.join(DETECTORS)})")
    for name in DETECTORS:
        build_detector(name, detectors.get(name), f"{PARAMS_FILE}: detectors.{name}")
    write_text(OUT, "params.yaml parsed: every section valid\n")


if __name__ == "__main__":
    run(main)
