"""AudioSet segment lists and ontology: unreadable or empty lists give errors naming them."""

from __future__ import annotations

import gzip
import re

import pytest

from asdlib.corpora.audioset_music import label_name, read_segments, select_music_segments, select_segments
from asdlib.corpora.dcase_layout import CorpusLayoutError
from fake_corpora import write_audioset_ontology, write_audioset_segments


def test_list_of_comments_only_selects_nothing(tmp_path):
    segments = read_segments(write_audioset_segments(tmp_path / "eval_segments.csv", []))
    selected = select_segments(segments)
    assert selected.empty and list(selected.columns) == ["ytid", "start_s", "end_s", "labels", "list"]


def test_lists_without_segments_name_the_folder(tmp_path):
    write_audioset_segments(tmp_path / "eval_segments.csv", [])
    write_audioset_ontology(tmp_path / "ontology.json")
    with pytest.raises(CorpusLayoutError, match=rf"{re.escape(str(tmp_path))}: the segment lists "
                                                r"eval_segments\.csv hold no segments"):
        select_music_segments(tmp_path)


def test_segment_list_not_utf8_names_it(tmp_path):
    path = tmp_path / "eval_segments.csv"
    path.write_bytes(gzip.compress(b'--PJHxphWEs, 30.000, 40.000, "/m/04rlf"\n'))  # compressed, not CSV
    with pytest.raises(CorpusLayoutError, match=rf"{re.escape(str(path))}: not a readable AudioSet segment list"):
        read_segments(path)


def test_ontology_not_utf8_names_it(tmp_path):
    path = tmp_path / "ontology.json"
    path.write_bytes(b"\xff\xfe[]")
    with pytest.raises(CorpusLayoutError, match=rf"{re.escape(str(path))}: unreadable ontology"):
        label_name(path)
