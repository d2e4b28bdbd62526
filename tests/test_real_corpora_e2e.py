"""`dvc repro` on the real corpora (DCASE 2020 Task 2, MIMII), offline.

Tiny archives with the real names and layout are served from 127.0.0.1; params point
`corpus.mirror` at that server and `corpus.archive_list` at an archives.json holding
their checksums, exactly as for a private mirror of the real files. The fast tests run
`dvc repro mix` (corpus, manifest, noise, mix) and check the mixture manifest and the
stored audio; the `slow` ones run the whole pipeline and check `metrics/asd.json`.
"""

from __future__ import annotations

import copy
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from fake_corpora import archive_list_for, make_dcase_tree, make_mimii_archive, write_archive_list, write_tiny_wav
from http_server import serve_directory
from pipeline_repo import TINY, deep_update, make_repo, sh

from asdlib.store import ShardReader

TYPES = ("fan", "valve")
IDS = (0, 2)
DCASE_PER_ID = 4  # train normals per ID; the test split has as many normal and anomalous clips
MIMII_LEVELS = ("-6dB", "6dB")
MODELS = ("dense_ae", "conformer_ae", "stgram_mfn")


def make_dcase_dev_archive(directory: Path, machine_type: str, seconds: float) -> Path:
    """``dev_data_<type>.zip`` whose test normals are copies of training clips (same names).

    Anomalies are unseen clips, so on clean input a nearest-neighbour scorer must rank
    every normal test clip below every anomaly: a check that labels survive end to end.
    """
    staging = directory / f".staging-{machine_type}"
    make_dcase_tree(staging, machine_type, "dev", IDS, DCASE_PER_ID, seconds)
    for normal in sorted((staging / machine_type / "test").glob("normal_*.wav")):
        shutil.copyfile(staging / machine_type / "train" / normal.name, normal)
    archive = directory / f"dev_data_{machine_type}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(staging).as_posix())
    shutil.rmtree(staging)
    return archive


def make_mimii_archives(directory: Path, n_normal: int, n_abnormal: int, seconds: float) -> list[Path]:
    """``<snr>_dB_<type>.zip`` for both levels and types: 8-channel WAVs in the MIMII layout."""
    return [make_mimii_archive(directory, int(level[:-2]), t, IDS, n_normal, n_abnormal, seconds)
            for level in MIMII_LEVELS for t in TYPES]


def repro_with_mirror(base: Path, corpus_name: str, archives: list[Path], override: dict,
                      target: list[str]) -> tuple[Path, list[str]]:
    """Serve ``archives``, make a repository whose params use that mirror, run `dvc repro` ``target``.

    Returns the repository and the paths the server was asked for. The server stops
    afterwards, so any later network access from the pipeline would fail.
    """
    served = archives[0].parent
    with serve_directory(served) as server:
        archive_list = write_archive_list(base / "archives.json",
                                          archive_list_for(corpus_name, archives, server.url))
        corpus = {"source": corpus_name, "download_dir": str(base / "downloads"), "mirror": server.url,
                  "archive_list": str(archive_list), "machine_types": list(TYPES)}
        params = deep_update(copy.deepcopy(TINY), deep_update(copy.deepcopy(override), {"corpus": corpus}))
        repo = make_repo(base / "repo", params)
        sh(["dvc", "repro", *target], repo)
        return repo, server.paths_requested()


def read_mixture(row: pd.Series, repo: Path) -> np.ndarray:
    with ShardReader(repo / row["store"]) as reader:
        return reader.read(row["key"])


def read_channel(path: str, channel: int) -> np.ndarray:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == 16000
    return data[:, channel]


def check_asd_metrics(repo: Path, conditions: tuple[str, ...]) -> dict:
    """Per-ID AUC and pAUC for every model, input, condition and machine type."""
    metrics = json.loads((repo / "metrics" / "asd.json").read_text())
    for model in MODELS:
        for input_name in ("raw", "mse"):
            assert set(metrics[model][input_name]) == set(conditions)
            for condition in conditions:
                result = metrics[model][input_name][condition]
                for machine_type in TYPES:
                    assert set(result[machine_type]) == {"id_00", "id_02", "mean"}
                    for machine_id in ("id_00", "id_02"):
                        values = result[machine_type][machine_id]
                        assert 0.0 <= values["auc"] <= 1.0 and 0.0 <= values["pauc"] <= 1.0
                assert set(result["overall"]) == {"auc", "pauc", "auc_hmean", "pauc_hmean"}
    return metrics


# --- DCASE 2020 Task 2 -----------------------------------------------------------------------

DCASE_PARAMS = {"corpus": {"dcase2020_subsets": ["dev"]}}


@pytest.fixture(scope="module")
def dcase_mix(tmp_path_factory) -> tuple[Path, list[str]]:
    """`dvc repro mix` on 1 s DCASE clips read at the corpus's own length (padded to 10 s).

    The download folder already holds additional training data (eval_data/) from an
    earlier run; with subsets [dev] it must stay out of the manifest.
    """
    base = tmp_path_factory.mktemp("dcase_mix")
    archives = [make_dcase_dev_archive(base / "served", t, seconds=1.0) for t in TYPES]
    write_tiny_wav(base / "downloads" / "dcase2020" / "eval_data" / "fan" / "train" / "normal_id_01_00000000.wav",
                   seconds=1.0)
    return repro_with_mirror(base, "dcase2020", archives, DCASE_PARAMS, ["mix"])


def test_dcase_downloads_through_the_mirror_and_archive_list(dcase_mix):
    repo, requested = dcase_mix
    assert sorted(requested) == ["/dev_data_fan.zip", "/dev_data_valve.zip"]
    info = json.loads((repo / "data" / "corpus" / "corpus.json").read_text())
    assert info["source"] == "dcase2020"
    assert (Path(info["root"]) / "dev_data" / "fan" / "train" / "normal_id_00_00000000.wav").is_file()


def test_dcase_manifest_has_only_the_chosen_subset(dcase_mix):
    repo, _ = dcase_mix
    manifest = pd.read_csv(repo / "data" / "manifest.csv")
    assert set(manifest["dataset"]) == {"dcase2020"}
    counts = manifest.groupby(["machine_type", "machine_id", "split", "label"]).size()
    expected = {(t, f"id_{i:02d}", split, label): DCASE_PER_ID
                for t in TYPES for i in IDS
                for split, label in (("train", "normal"), ("test", "normal"), ("test", "anomaly"))}
    assert counts.to_dict() == expected  # no id_01 from the stale eval_data/ folder
    assert set(manifest["num_samples"]) == {160000}


def test_dcase_mixtures_are_ten_seconds_at_every_condition(dcase_mix):
    repo, _ = dcase_mix
    corpus = pd.read_csv(repo / "data" / "manifest.csv")
    mixtures = pd.read_csv(repo / "data" / "mix" / "manifest.csv")
    assert len(mixtures) == 2 * len(corpus)
    assert set(mixtures["condition"]) == {"clean", "0dB"}
    assert set(mixtures["source_clip_id"]) == set(corpus["clip_id"])
    noisy = mixtures[mixtures["condition"] == "0dB"]
    assert np.allclose(noisy["snr_db"], 0.0, atol=0.01)
    for condition in ("clean", "0dB"):
        row = mixtures[(mixtures["condition"] == condition) & (mixtures["machine_type"] == "valve")].iloc[0]
        audio = read_mixture(row, repo)
        source = read_channel(row["path"], 0)
        assert audio.shape == (160000,) and len(source) == 16000
        if condition == "clean":  # the clip, zero-padded
            assert np.array_equal(audio[:16000], source) and not audio[16000:].any()
        else:  # noise over the whole 10 s
            assert audio[16000:].any()


def test_dcase_corpus_stage_reruns_without_network(dcase_mix):
    repo, _ = dcase_mix  # the mirror is down now
    sh(["dvc", "repro", "-f", "-s", "corpus"], repo)
    status = sh(["dvc", "status", "mix"], repo).stdout
    assert "up to date" in status.lower(), status


@pytest.mark.slow
def test_dcase_full_repro_writes_per_id_metrics(tmp_path_factory):
    base = tmp_path_factory.mktemp("dcase_full")
    archives = [make_dcase_dev_archive(base / "served", t, seconds=1.0) for t in TYPES]
    override = deep_update(copy.deepcopy(DCASE_PARAMS), {"corpus": {"clip_seconds": 1.0}})
    repo, _ = repro_with_mirror(base, "dcase2020", archives, override, [])
    metrics = check_asd_metrics(repo, ("clean", "0dB"))
    knn = metrics["stgram_mfn_knn"]["raw"]["clean"]
    for machine_type in TYPES:  # test normals are copies of training clips
        assert knn[machine_type]["id_00"]["auc"] == 1.0 and knn[machine_type]["id_02"]["auc"] == 1.0


# --- MIMII -----------------------------------------------------------------------------------

MIMII_PARAMS = {"corpus": {"mimii_levels": list(MIMII_LEVELS)},
                "mix": {"conditions": list(MIMII_LEVELS)},
                "train": {"conditions": list(MIMII_LEVELS)}}


@pytest.fixture(scope="module")
def mimii_mix(tmp_path_factory) -> Path:
    """`dvc repro mix` on MIMII, channel 3, clips cropped to 0.5 s."""
    base = tmp_path_factory.mktemp("mimii_mix")
    archives = make_mimii_archives(base / "served", n_normal=6, n_abnormal=2, seconds=1.0)
    override = deep_update(copy.deepcopy(MIMII_PARAMS), {"corpus": {"channel": 3, "clip_seconds": 0.5}})
    repo, requested = repro_with_mirror(base, "mimii", archives, override, ["mix"])
    assert sorted(requested) == sorted(f"/{a.name}" for a in archives)
    return repo


def test_mimii_manifest_splits_each_level_and_id(mimii_mix):
    manifest = pd.read_csv(mimii_mix / "data" / "manifest.csv")
    assert set(manifest["dataset"]) == {"mimii"} and set(manifest["channel"]) == {3}
    counts = manifest.groupby(["condition", "machine_type", "machine_id", "split", "label"]).size()
    expected = {(level, t, f"id_{i:02d}", split, label): n
                for level in MIMII_LEVELS for t in TYPES for i in IDS
                for split, label, n in (("train", "normal", 4), ("test", "normal", 2), ("test", "anomaly", 2))}
    assert counts.to_dict() == expected


def test_mimii_clips_are_stored_as_recorded_under_their_level(mimii_mix):
    corpus = pd.read_csv(mimii_mix / "data" / "manifest.csv")
    mixtures = pd.read_csv(mimii_mix / "data" / "mix" / "manifest.csv")
    assert len(mixtures) == len(corpus)
    assert set(mixtures["condition"]) == set(MIMII_LEVELS)
    for level in MIMII_LEVELS:
        rows = mixtures[mixtures["condition"] == level]
        assert rows["path"].str.contains(f"/{level[:-2]}_dB/").all()
        assert (rows["snr_db"] == float(level[:-2])).all() and (rows["snr_target_db"] == rows["snr_db"]).all()
        assert set(rows["store"]) == {f"data/mix/{t}/{level}.h5" for t in TYPES}
        assert (rows["clip_id"] == rows["source_clip_id"] + "@" + level).all()
    assert mixtures["noise_type"].isna().all()  # nothing was added
    for _, row in mixtures.iloc[[0, -1]].iterrows():
        audio = read_mixture(row, mimii_mix)
        assert audio.shape == (8000,)
        assert np.array_equal(audio, read_channel(row["path"], 3)[:8000])
        assert not np.array_equal(audio, read_channel(row["path"], 0)[:8000])


def test_mimii_mix_rejects_conditions_not_recorded(mimii_mix, tmp_path):
    repo = Path(shutil.copytree(mimii_mix, tmp_path / "repo", symlinks=True))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["mix"]["conditions"] = ["clean", "-6dB"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = sh(["python", "-m", "stages.mix"], repo, check=False)  # what `dvc repro` would run
    assert result.returncode == 1
    assert "conditions ['clean'] are not in this corpus (it has ['-6dB', '6dB'])" in result.stderr
    assert (repo / "data" / "mix" / "manifest.csv").is_file()  # the previous output is kept


@pytest.mark.slow
def test_mimii_full_repro_writes_per_level_metrics(tmp_path_factory):
    base = tmp_path_factory.mktemp("mimii_full")
    archives = make_mimii_archives(base / "served", n_normal=10, n_abnormal=3, seconds=1.0)
    override = deep_update(copy.deepcopy(MIMII_PARAMS), {"corpus": {"channel": 0, "clip_seconds": 1.0}})
    repo, _ = repro_with_mirror(base, "mimii", archives, override, [])
    check_asd_metrics(repo, MIMII_LEVELS)
    shown = sh(["dvc", "metrics", "show", "--md"], repo).stdout
    assert "dense_ae.raw.-6dB.fan.id_00.auc" in shown and "stgram_mfn.mse.6dB.valve.id_02.pauc" in shown
    snr = json.loads((repo / "metrics" / "snr.json").read_text())
    assert set(snr["by_condition"]) == set(MIMII_LEVELS)
