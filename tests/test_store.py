import hashlib

import numpy as np
import pytest

from asdlib.store import ShardBuilder, ShardReader, StoreError, fingerprint, read_row


def clip(i):
    return (np.sin(np.arange(2000) * (i + 1) * 0.01)).astype(np.float32)


def build(path, work, keys, fail_after=None, part_size=3):
    builder = ShardBuilder(path, "fp1", work, part_size=part_size)
    done = builder.done_keys()
    computed = []
    for n, key in enumerate(keys):
        if key in done:
            continue
        if fail_after is not None and len(computed) == fail_after:
            raise KeyboardInterrupt("simulated kill")
        builder.add(key, clip(n), {"source": key, "snr_db": 1.25 * n, "periods": [n, n + 1]})
        computed.append(key)
    builder.finish(keys)
    return computed


def test_roundtrip_and_attrs(tmp_path):
    keys = [f"c{i}" for i in range(5)]
    build(tmp_path / "s.h5", tmp_path / "work", keys)
    with ShardReader(tmp_path / "s.h5") as r:
        assert r.keys() == sorted(keys)
        assert np.array_equal(r.read("c2"), clip(2))
        assert r.attrs("c2") == {"source": "c2", "snr_db": 2.5, "periods": [2, 3]}
        with pytest.raises(StoreError, match="no clip 'zz'"):
            r.read("zz")
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["s-fp1.h5"]  # parts gone, shard kept


def test_finished_shard_is_reused_when_its_output_is_lost(tmp_path):
    keys = [f"c{i}" for i in range(5)]
    build(tmp_path / "out" / "s.h5", tmp_path / "work", keys)
    first = (tmp_path / "out" / "s.h5").read_bytes()
    (tmp_path / "out" / "s.h5").unlink()  # a stage deletes its unpublished output folder on a rerun
    assert build(tmp_path / "out" / "s.h5", tmp_path / "work", keys) == []
    assert (tmp_path / "out" / "s.h5").read_bytes() == first


def test_finished_shard_with_other_keys_is_deleted_and_named(tmp_path):
    build(tmp_path / "s.h5", tmp_path / "work", ["a", "b"])
    builder = ShardBuilder(tmp_path / "s.h5", "fp1", tmp_path / "work")
    with pytest.raises(StoreError, match="s-fp1.h5: a shard finished by an earlier run holds other clips"):
        builder.finish(["a", "b", "c"])
    assert ShardBuilder(tmp_path / "s.h5", "fp1", tmp_path / "work").done_keys() == set()
    build(tmp_path / "s.h5", tmp_path / "work", ["a", "b", "c"])  # now one clip too many
    with pytest.raises(StoreError, match="holds other clips"):
        ShardBuilder(tmp_path / "s.h5", "fp1", tmp_path / "work").finish(["a", "b"])


def test_read_row_reads_a_replaced_shard_afresh(tmp_path):
    build(tmp_path / "s.h5", tmp_path / "w1", ["c0"])
    assert np.array_equal(read_row({"store": str(tmp_path / "s.h5"), "key": "c0"}), clip(0))
    builder = ShardBuilder(tmp_path / "s.h5", "fp2", tmp_path / "w2")
    builder.add("c0", clip(7))
    builder.finish(["c0"])  # renamed over the shard the open reader holds
    assert np.array_equal(read_row({"store": str(tmp_path / "s.h5"), "key": "c0"}), clip(7))
    with pytest.raises(StoreError, match="absent.h5: shard not found"):
        read_row({"store": str(tmp_path / "absent.h5"), "key": "c0"})


def test_interrupted_build_resumes_to_identical_bytes(tmp_path):
    keys = [f"c{i}" for i in range(8)]
    build(tmp_path / "full.h5", tmp_path / "w1", keys)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / "res.h5", tmp_path / "w2", keys, fail_after=7)
    assert not (tmp_path / "res.h5").exists()
    recomputed = build(tmp_path / "res.h5", tmp_path / "w2", keys)
    assert recomputed == ["c6", "c7"]  # two full parts of 3 survived the kill
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()
    assert digest(tmp_path / "res.h5") == digest(tmp_path / "full.h5")


def test_corrupt_part_is_recomputed(tmp_path):
    keys = [f"c{i}" for i in range(8)]
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / "s.h5", tmp_path / "w", keys, fail_after=6, part_size=2)
    parts = sorted((tmp_path / "w").rglob("part-*.npz"))
    assert len(parts) == 3
    parts[1].write_bytes(b"garbage")  # c2, c3 lost; c0, c1, c4, c5 survive
    assert build(tmp_path / "s.h5", tmp_path / "w", keys, part_size=2) == ["c2", "c3", "c6", "c7"]
    with ShardReader(tmp_path / "s.h5") as r:
        assert np.array_equal(r.read("c5"), clip(5))


def test_truncated_part_is_recomputed(tmp_path):
    keys = [f"c{i}" for i in range(6)]
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / "s.h5", tmp_path / "w", keys, fail_after=4, part_size=2)
    parts = sorted((tmp_path / "w").rglob("part-*.npz"))
    data = parts[0].read_bytes()
    parts[0].write_bytes(data[:len(data) // 2])  # a zip cut short: its directory is gone
    assert build(tmp_path / "s.h5", tmp_path / "w", keys, part_size=2) == ["c0", "c1", "c4", "c5"]


def test_missing_keys_and_bad_shard(tmp_path):
    builder = ShardBuilder(tmp_path / "s.h5", "fp", tmp_path / "w")
    builder.add("a", clip(0))
    with pytest.raises(StoreError, match="1 clips were never computed"):
        builder.finish(["a", "b"])
    assert not (tmp_path / "s.h5").exists()
    with pytest.raises(StoreError, match="must not contain"):
        builder.add("a/b", clip(0))
    (tmp_path / "bad.h5").write_bytes(b"nope")
    with pytest.raises(StoreError, match="bad.h5: not a readable HDF5"):
        ShardReader(tmp_path / "bad.h5")
    with pytest.raises(StoreError, match="shard not found"):
        ShardReader(tmp_path / "absent.h5")


def test_corrupt_chunk_names_the_shard_and_clip(tmp_path):
    noise = np.random.default_rng(0).standard_normal(100_000).astype(np.float32)  # barely compressible
    builder = ShardBuilder(tmp_path / "s.h5", "fp", tmp_path / "w")
    builder.add("fan.c0@clean", noise)
    builder.finish(["fan.c0@clean"])
    with open(tmp_path / "s.h5", "r+b") as fh:  # 4 KiB of garbage in the middle of the compressed data
        fh.seek((tmp_path / "s.h5").stat().st_size // 2)
        fh.write(bytes(range(256)) * 16)
    with ShardReader(tmp_path / "s.h5") as r, pytest.raises(
            StoreError, match=r"s\.h5: clip 'fan\.c0@clean' is corrupt.*run the stage that writes it"):
        r.read("fan.c0@clean")


def test_fingerprint_stable_and_sensitive():
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
