"""Resumable work folders of the stages are keyed by params, inputs and the code."""

from __future__ import annotations

import sys
import types

import stages.work as common


def _fake_module(monkeypatch, path, source: str) -> None:
    path.write_text(source)
    module = types.ModuleType("asdlib._work_key_probe")
    module.__file__ = str(path)
    monkeypatch.setitem(sys.modules, module.__name__, module)


def test_code_digest_follows_the_source_of_loaded_project_modules(tmp_path, monkeypatch):
    before = common.code_digest()
    _fake_module(monkeypatch, tmp_path / "probe.py", "x = 1\n")
    with_probe = common.code_digest()
    assert with_probe != before
    assert common.code_digest() == with_probe  # stable
    (tmp_path / "probe.py").write_text("x = 2\n")
    assert common.code_digest() != with_probe


def test_work_dir_changes_with_key_or_code_and_removes_stale_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "WORK", tmp_path / "work")
    _fake_module(monkeypatch, tmp_path / "probe.py", "x = 1\n")
    first = common.work_dir("train/m", {"lr": 1e-3})
    first.mkdir(parents=True)
    (first / "checkpoint.pt").write_bytes(b"old")
    assert common.work_dir("train/m", {"lr": 1e-3}) == first  # same key and code: resume here
    assert first.exists()

    other_key = common.work_dir("train/m", {"lr": 1e-4})
    assert other_key != first and not first.exists()
    other_key.mkdir(parents=True)

    (tmp_path / "probe.py").write_text("x = 2\n")
    new_code = common.work_dir("train/m", {"lr": 1e-4})
    assert new_code != other_key and not other_key.exists()
