"""Progress bars for long work, and a switch that turns them off.

Bars show on a terminal only. A process that shares its terminal with others doing
the same kind of work (the train stages fit several SNR conditions at once, one
per worker process) would draw its bars over theirs on the same line; it runs under
:func:`bars_off`, and the training loop then reports each epoch as a log line.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Optional

from tqdm.auto import tqdm

_bars_shown = True


def progress_bar(iterable: Optional[Iterable[Any]] = None, **kwargs: Any) -> tqdm:
    """A tqdm bar (``kwargs`` as tqdm's) drawn on a terminal only, never under :func:`bars_off`."""
    return tqdm(iterable, disable=None if _bars_shown else True, **kwargs)


@contextmanager
def bars_off() -> Iterator[None]:
    """Within this block, :func:`progress_bar` draws nothing."""
    global _bars_shown
    previous, _bars_shown = _bars_shown, False
    try:
        yield
    finally:
        _bars_shown = previous
