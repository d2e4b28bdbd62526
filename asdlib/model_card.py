"""Model cards: what a trained model folder was trained on, so that it can be scored later.

The train stages write ``model_card.json`` into every model folder
(``data/models/<model>/<input>/<condition>``): the detector, its settings as trained
(scorer options included, which the weights files do not hold), the input (``raw``
mixtures or ``mse`` output), the SNR condition and, for MSE input, how the audio was
extracted: the record the ``mse`` stage writes next to its manifest as
``extraction.json`` (an :class:`asdlib.extraction.MseRecord`: the ``mse`` params and
the SNR estimator's digest; kept here as plain data so that cards need no MSE code).
``asd score`` reads the card, so a folder fetched from a remote is scored as it was
trained without the params.yaml of the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from asdlib.config import ConfigError, parse, to_dict
from asdlib.fileio import write_json

MODEL_CARD_FILE = "model_card.json"
EXTRACTION_FILE = "extraction.json"


@dataclass(frozen=True)
class ModelCard:
    """A trained model folder's provenance: ``detector`` (its registry name) with
    ``settings`` (its ``detectors.<name>`` section, complete), trained on ``input``
    audio of SNR ``condition``; ``extraction``: how MSE input was made (None for raw)."""

    detector: str
    input: Literal["raw", "mse"]
    condition: str
    settings: dict[str, Any]
    extraction: Optional[dict[str, Any]] = None

    def __post_init__(self) -> None:
        if (self.input == "mse") != (self.extraction is not None):
            raise ValueError(f"input {self.input!r}: extraction must be given for mse input and only then")


def write_model_card(model_dir: str | Path, card: ModelCard) -> None:
    """Write ``model_dir/model_card.json`` (atomically; keys sorted)."""
    write_json(Path(model_dir) / MODEL_CARD_FILE, to_dict(card))


def read_model_card(model_dir: str | Path) -> Optional[ModelCard]:
    """The card of a model folder, or None for a folder without one (trained before
    cards were written); a malformed card is a :class:`ConfigError` naming the file."""
    path = Path(model_dir) / MODEL_CARD_FILE
    if not path.is_file():
        return None
    return parse(ModelCard, read_record(path), str(path))


def read_record(path: str | Path) -> dict[str, Any]:
    """A JSON object from ``path`` (a card, or an ``extraction.json``); errors name the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
