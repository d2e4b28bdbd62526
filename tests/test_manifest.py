"""Manifest validation: rows with an empty cell or a bad channel, and mixture manifests missing
a mixture column, give errors naming the file, column and row; the length a row's clip is read at."""

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
    ("a,/x.wav,x,,id_00,train,normal,0\n", r"empty machine_type in row 1 \(clip_id 'a'\)$"),
    ("a,/x.wav,x,fan,id_00,train,normal,0\n,/y.wav,x,fan,id_00,train,normal,0\n",
     r"empty clip_id in row 2 \(no clip_id\)$"),
    ("a,/x.wav, ,fan,id_00,train,normal,0\n", r"empty dataset in row 1 \(clip_id 'a'\)$"),
    ("a,/x.wav,x,fan,id_00,,normal,0\n", r"empty split in row 1 \(clip_id 'a'\)$"),
])
def test_bad_rows_name_the_file_and_row(tmp_path, rows, message):
    path = tmp_path / "manifest.csv"
    path.write_text(HEADER + rows)
    with pytest.raises(ManifestError, match=rf"{re.escape(str(path))}: {message}"):
        read_manifest(path)


MIX_HEADER = HEADER.rstrip("\n") + ",source_clip_id,condition,snr_target_db,snr_db,noise_type,noise_offset,store,key\n"
MIX_ROW = "a@clean,/x.wav,x,fan,id_00,train,normal,0,a,clean,,,,-1,data/mix/fan/clean.h5,a@clean\n"


def without(text: str, column: str) -> str:
    """``text`` (a CSV) without ``column``."""
    lines = [line.split(",") for line in text.splitlines()]
    at = lines[0].index(column)
    return "".join(",".join(cells[:at] + cells[at + 1:]) + "\n" for cells in lines)


def test_mixture_manifest_reads_with_empty_noise_and_snr_for_clean(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text(MIX_HEADER + MIX_ROW)
    assert read_manifest(path)[["store", "key", "condition"]].values.tolist() == [
        ["data/mix/fan/clean.h5", "a@clean", "clean"]]


@pytest.mark.parametrize("column", ["store", "condition", "key", "source_clip_id"])
def test_mixture_manifest_missing_a_mix_column_names_it(tmp_path, column):
    path = tmp_path / "manifest.csv"
    path.write_text(without(MIX_HEADER + MIX_ROW, column))
    with pytest.raises(ManifestError, match=rf"{re.escape(str(path))}: missing mixture columns \['{column}'\] "
                                            r"\(it has the mixture column '\w+'; run the stage that writes it\)"):
        read_manifest(path)


def test_noisy_corpus_manifest_is_not_a_mixture_manifest(tmp_path):
    path = tmp_path / "manifest.csv"  # MIMII: recorded noisy, its rows carry condition and snr_db
    path.write_text(HEADER.rstrip("\n") + ",condition,snr_db\na,/x.wav,x,fan,id_00,train,normal,0,6dB,6.0\n")
    assert read_manifest(path)["condition"].tolist() == ["6dB"]


@pytest.mark.parametrize("column", ["store", "key", "condition", "source_clip_id"])
def test_mixture_manifest_with_an_empty_mix_cell_names_the_row(tmp_path, column):
    header = MIX_HEADER.rstrip("\n").split(",")
    cells = MIX_ROW.rstrip("\n").split(",")
    cells[header.index(column)] = ""
    path = tmp_path / "manifest.csv"
    path.write_text(MIX_HEADER + ",".join(cells) + "\n")
    with pytest.raises(ManifestError, match=rf"{re.escape(str(path))}: empty {column} in row 1 \(clip_id 'a@clean'\)$"):
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
