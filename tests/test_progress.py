"""Progress bars: drawn on a terminal, never under bars_off."""

from __future__ import annotations

import io

from asdlib.progress import bars_off, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_draw_on_a_terminal_only():
    with progress_bar(total=3, file=_Terminal()) as bar:
        assert not bar.disable
    with progress_bar(total=3, file=io.StringIO()) as bar:
        assert bar.disable


def test_bars_off_hides_them_until_the_block_ends_even_when_nested():
    with bars_off():
        with bars_off():
            pass
        with progress_bar(total=3, file=_Terminal()) as bar:
            assert bar.disable
    with progress_bar(total=3, file=_Terminal()) as bar:
        assert not bar.disable
