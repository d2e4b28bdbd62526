"""Atomic writes of files and folders: a failure or a kill never leaves a half-written target."""

from __future__ import annotations

import pytest

from asdlib.fileio import replace_dir, write_bytes, write_text


def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(TypeError):
        write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_replace_dir_swaps_in_the_finished_folder(tmp_path):
    target, finished = tmp_path / "out", tmp_path / ".out.tmp"
    (target / "sub").mkdir(parents=True)
    (target / "sub" / "old.txt").write_text("old")
    finished.mkdir()
    (finished / "new.txt").write_text("new")
    replace_dir(finished, target)
    assert sorted(p.name for p in target.rglob("*")) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_replace_dir_after_a_kill_between_its_renames(tmp_path):
    # the old version was moved aside and the new one not yet in place: the next run
    # clears what was set aside and puts its own finished folder in place
    (tmp_path / ".out.old").mkdir()
    (tmp_path / ".out.old" / "old.txt").write_text("old")
    finished = tmp_path / ".out.tmp"
    finished.mkdir()
    (finished / "new.txt").write_text("new")
    replace_dir(finished, tmp_path / "out")
    assert (tmp_path / "out" / "new.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
