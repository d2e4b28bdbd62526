"""NOISEX-92 conversion: files that are not MATLAB data give an error naming them."""

from __future__ import annotations

import re

import pytest

from asdlib.audio import AudioError
from asdlib.corpora.noisex92 import prepare_noisex92
from fake_corpora import make_noisex_files


@pytest.mark.parametrize("content", [
    b"<html><body>404 Not Found</body></html>\n",  # an error page saved as .mat
    b"",
    b"MATLAB 5.0 MAT-file",  # header cut short
])
def test_unreadable_mat_file_names_it(tmp_path, content):
    (tmp_path / "src").mkdir()
    mat = tmp_path / "src" / "white.mat"
    mat.write_bytes(content)
    with pytest.raises(AudioError, match=rf"{re.escape(str(mat))}: not a readable MATLAB file"):
        prepare_noisex92(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_good_mat_file_still_converts(tmp_path):
    make_noisex_files(tmp_path / "src", ["white"], seconds=0.1)
    assert prepare_noisex92(tmp_path / "src", tmp_path / "out")["name"].tolist() == ["white"]
