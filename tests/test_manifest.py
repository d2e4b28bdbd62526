"""Manifest validation: rows without a path or with a bad channel give errors naming the file and
row; the length a row's clip is read at."""

from __future__ import annotations

import re

import pytest

from asdlib.manifest import ManifestError, from_rows, read_length, read_manifest

HEADER = "clip_id,path,dataset,machine_type,machine_id,split,label,channel\n"


@pytest.mark.parametrize("rows, message", [
    ("a,/x.wav,x,fan,id_00,train,normal,0\nb,,x,fan,id_00,train,normal,0\n",
     r"empty path in row 2 \(clip_id 'b'\)"),
    ("a,/x.wav,x,fan,id_00,train,normal,\n",
     r"channel must be a whole number >= 0, got \[''\] in row 1 \(clip_id 'a'\)"),
    ("a,/x.wav,x,fan,id_00,train,normal,zero\n", r"channel must be .*, got \['zero'\] in row 1 \(clip_id 'a'\)"),
    ("a,/x.wav,x,fan,id_00,train,normal,1.5\n", r"channel must be .*, got \['1.5'\] in row 1"),
])
def test_bad_rows_name_the_file_and_row(tmp_path, rows, message):
    path = tmp_path / "manifest.csv"
    path.write_text(HEADER + rows)
    with pytest.raises(ManifestError, match=rf"{re.escape(str(path))}: {message}"):
        read_manifest(path)


def test_channel_is_read_as_integer(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text(HEADER + "a,/x.wav,x,fan,id_00,train,normal,3\n")
    assert read_manifest(path)["channel"].tolist() == [3]


def test_rows_built_in_code_are_checked_too():
    row = {"clip_id": "a", "path": " ", "dataset": "x", "machine_type": "fan", "machine_id": "id_00",
           "split": "train", "label": "normal", "channel": 0}
    with pytest.raises(ManifestError, match=r"corpus: empty path in row 1 \(clip_id 'a'\)"):
        from_rows([row], source="corpus")


def test_read_length_is_none_where_the_corpus_lists_no_length(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text(HEADER.replace("\n", ",num_samples\n")
                    + "a,/x.wav,x,fan,id_00,train,normal,0,32000\nb,/y.wav,x,fan,id_00,train,normal,0,\n")
    rows = read_manifest(path).to_dict("records")
    assert [read_length(row) for row in rows] == [32000, None]
    assert read_length({"path": "/x.wav"}) is None
