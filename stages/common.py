"""What every stage shares: reading its params section strictly, and failing or stopping cleanly."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, NoReturn, TypeVar

from asdlib.allocator import keep_freed_memory
from asdlib.config import ConfigError, load_yaml, parse

T = TypeVar("T")

PARAMS_FILE = Path("params.yaml")
DATA = Path("data")
WORK = DATA / ".work"  # resumable scratch space, never a DVC output
METRICS = Path("metrics")
CONFORMER_PRETRAINED = DATA / "models" / "conformer_pretrained"  # stage pretrain -> train_conformer_ae


def params_section(name: str, cls: type[T]) -> T:
    """Parse section ``name`` of params.yaml into ``cls``, naming any bad key."""
    params = load_yaml(PARAMS_FILE)
    if name not in params:
        raise ConfigError(f"{PARAMS_FILE}: missing section {name!r}")
    return parse(cls, params[name], f"{PARAMS_FILE}: {name}")


def detector_section(name: str) -> Any:
    """The raw ``detectors.<name>`` mapping of params.yaml (None when absent): each detector
    parses it into its own settings class."""
    detectors = load_yaml(PARAMS_FILE).get("detectors")
    if detectors is None:
        return None
    if not isinstance(detectors, dict):
        raise ConfigError(f"{PARAMS_FILE}: detectors: expected a mapping of detector names to "
                          f"their settings, got {detectors!r}")
    return detectors.get(name)


def configure_logging(label: str = "") -> None:
    """INFO lines ``LEVEL name: message``; ``label`` (a job's name) follows the level, for
    worker processes sharing the terminal. Replaces an earlier setup (a reused worker)."""
    tag = f" [{label}]" if label else ""
    logging.basicConfig(level=logging.INFO, format=f"%(levelname)s{tag} %(name)s: %(message)s", force=True)


def run(main: Callable[[], Any]) -> None:
    """Run a stage's main; expected errors print one line naming the culprit, exit code 1;
    Ctrl-C prints one line saying what a rerun does, exit code 130 (``ASD_DEBUG=1``: with
    the traceback). Freed memory is kept for reuse, in the stage and its workers
    (:mod:`asdlib.allocator`)."""
    configure_logging()
    keep_freed_memory()
    try:
        main()
    except (ValueError, OSError) as exc:
        _end(f"error: {exc}", 1)
    except KeyboardInterrupt:
        _end(f"interrupted: {_rerun_note()}", 130)


def _end(message: str, code: int) -> NoReturn:
    """Print ``message`` as the stage's last line (after the traceback under ``ASD_DEBUG``), exit ``code``."""
    if os.environ.get("ASD_DEBUG"):
        traceback.print_exc()
    print(message, file=sys.stderr)
    sys.exit(code)


def _rerun_note() -> str:
    """What to do after Ctrl-C: a stage with scratch space (one that imports :mod:`stages.work`)
    resumes from it when run again; the others start over (downloads resume by themselves)."""
    if "stages.work" in sys.modules:
        return f"finished work is kept in {WORK}; run again to resume"
    return "run the stage again"
