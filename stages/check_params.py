"""Stage `check_params`: parse every section of params.yaml before any other stage runs.

Each stage parses its own section again when it runs; this stage exists so that a
typo anywhere (say in `evaluate`) stops `dvc repro` before hours of extraction.
Its output never changes, so re-running it invalidates nothing downstream.
"""

from __future__ import annotations

from asdlib.config import ConfigError, load_yaml
from asdlib.corpora import dcase2020, mimii
from asdlib.corpora.dcase_layout import check_choice
from asdlib.detectors.registry import DETECTORS, build_detector
from asdlib.extraction import MseInput
from asdlib.fileio import write_text
from asdlib.manifest import SPLITS
from asdlib.mixing import MixSettings
from asdlib.noise_bank import NoiseBankSettings
from asdlib.parallel import ParallelSettings
from asdlib.snr_estimation import SnrEstimatorSettings
from asdlib.training import resolve_device

from stages.common import DATA, PARAMS_FILE, detector_section, params_section, run
from stages.corpus_params import CorpusParams, corpus_params
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
    corpus = corpus_params()
    _check_real_corpus(corpus)
    sections = {name: params_section(name, cls) for name, cls in SECTIONS.items()}
    _check_trained_conditions(sections["train"].conditions, corpus, sections["mix"].conditions)
    _check_splits(sections["train"].score_splits, sections["mix"].splits)
    detectors = {name: build_detector(name, detector_section(name), f"{PARAMS_FILE}: detectors.{name}")
                 for name in DETECTORS}  # each detector's train.device is checked here
    _check_device("snr.train.device", sections["snr"].train.device)
    _check_device("detectors.conformer_ae.pretrain.device", detectors["conformer_ae"].settings.pretrain.device)
    unknown = sorted(set(params.get("detectors") or {}) - set(DETECTORS))
    if unknown:
        raise ConfigError(f"{PARAMS_FILE}: detectors.{unknown[0]}: unknown detector (known: {', '.join(DETECTORS)})")
    write_text(OUT, "params.yaml parsed: every section valid\n")


def _check_trained_conditions(trained: list[str], corpus: CorpusParams, mixed: list[str]) -> None:
    """Each of train.conditions must be made by the mix stage: mix.conditions, or for MIMII
    (recorded noisy) the levels it records, corpus.mimii_levels."""
    made, key = (corpus.mimii_levels, "corpus.mimii_levels") if corpus.source == "mimii" else (mixed, "mix.conditions")
    absent = [c for c in trained if c not in made]
    if absent:
        raise ConfigError(f"{PARAMS_FILE}: train.conditions: {absent} not in {key} {list(made)}")


def _check_real_corpus(corpus: CorpusParams) -> None:
    """DCASE 2020 and MIMII have fixed machine types (and MIMII 8 channels): a typo would
    fail only in the corpus or manifest stage, after a download."""
    if corpus.source not in ("dcase2020", "mimii"):
        return
    source = dcase2020 if corpus.source == "dcase2020" else mimii
    try:
        check_choice("machine type", corpus.machine_types, source.MACHINE_TYPES)
    except ValueError as exc:
        raise ConfigError(f"{PARAMS_FILE}: corpus.machine_types: {exc} for source {corpus.source}") from exc
    if corpus.source == "mimii" and corpus.channel >= mimii.NUM_CHANNELS:
        raise ConfigError(f"{PARAMS_FILE}: corpus.channel: MIMII records {mimii.NUM_CHANNELS} channels "
                          f"(0..{mimii.NUM_CHANNELS - 1}), got {corpus.channel}")


def _check_device(key: str, device: str) -> None:
    """A device this machine has (``cuda`` without CUDA would fail only when its stage starts)."""
    try:
        resolve_device(device)
    except ValueError as exc:
        raise ConfigError(f"{PARAMS_FILE}: {key}: {exc}") from exc


def _check_splits(scored: list[str], mixed: list[str]) -> None:
    """Each of mix.splits must be a manifest split (a typo would mix nothing of it, silently)
    and each of train.score_splits a mixed one (else training ends with nothing to score).
    MIMII too: mix stores its recorded clips of mix.splits alone."""
    unknown = [s for s in mixed if s not in SPLITS]
    if unknown:
        raise ConfigError(f"{PARAMS_FILE}: mix.splits: {unknown} not a manifest split ({', '.join(SPLITS)})")
    absent = [s for s in scored if s not in mixed]
    if absent:
        raise ConfigError(f"{PARAMS_FILE}: train.score_splits: {absent} not in mix.splits {mixed}")


if __name__ == "__main__":
    run(main)
