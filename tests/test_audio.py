import numpy as np
import pytest
import soundfile as sf

from asdlib.audio import AudioError, crop_or_pad, read_audio, write_wav


def sine(n=1600, f=440.0, sr=16000):
    return (0.5 * np.sin(2 * np.pi * f * np.arange(n) / sr)).astype(np.float32)


def test_roundtrip_pcm16(tmp_path):
    x = sine()
    write_wav(tmp_path / "a.wav", x)
    y = read_audio(tmp_path / "a.wav")
    assert y.dtype == np.float32 and np.max(np.abs(x - y)) < 1e-4
    assert sf.info(str(tmp_path / "a.wav")).subtype == "PCM_16"


def test_multichannel_picks_channel(tmp_path):
    data = np.stack([sine(f=100), sine(f=200), sine(f=300)], axis=1)
    sf.write(tmp_path / "m.wav", data, 16000, subtype="PCM_16")
    y = read_audio(tmp_path / "m.wav", channel=2)
    assert np.allclose(y, data[:, 2], atol=1e-4)
    with pytest.raises(AudioError, match="m.wav: channel 5 requested but the file has 3"):
        read_audio(tmp_path / "m.wav", channel=5)


def test_sample_rate_mismatch_and_resample(tmp_path):
    sf.write(tmp_path / "r.wav", sine(n=4410, sr=44100), 44100, subtype="PCM_16")
    with pytest.raises(AudioError, match="r.wav: sample rate 44100 Hz, expected 16000 Hz"):
        read_audio(tmp_path / "r.wav")
    y = read_audio(tmp_path / "r.wav", resample=True)
    assert len(y) == 1600


def test_empty_truncated_garbage(tmp_path):
    sf.write(tmp_path / "e.wav", np.zeros(0, dtype=np.float32), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="e.wav: empty"):
        read_audio(tmp_path / "e.wav")
    write_wav(tmp_path / "t.wav", sine(n=16000))
    raw = (tmp_path / "t.wav").read_bytes()
    (tmp_path / "t.wav").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(AudioError, match="t.wav"):
        read_audio(tmp_path / "t.wav")
    (tmp_path / "g.wav").write_bytes(b"not audio at all" * 10)
    with pytest.raises(AudioError, match="g.wav: not a readable audio file"):
        read_audio(tmp_path / "g.wav")
    with pytest.raises(AudioError, match="missing.wav: file not found"):
        read_audio(tmp_path / "missing.wav")


@pytest.mark.parametrize("container", ["WAVEX", "RF64"])
def test_truncated_extensible_and_rf64_files_are_errors(tmp_path, container):
    data = np.stack([sine(n=16000, f=100.0 * (k + 1)) for k in range(8)], axis=1)  # 8 channels, as MIMII
    path = tmp_path / "m.wav"
    sf.write(str(path), data, 16000, subtype="PCM_16", format=container)
    assert sf.info(str(path)).format == container
    assert np.allclose(read_audio(path, channel=3), data[:, 3], atol=1e-4)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(AudioError, match=r"m\.wav: truncated: data chunk declares 256000 bytes"):
        read_audio(path)


def test_write_refuses_nan_and_overload_and_keeps_old_file(tmp_path):
    target = tmp_path / "k.wav"
    write_wav(target, sine())
    before = target.read_bytes()
    bad = sine()
    bad[3] = np.nan
    with pytest.raises(AudioError, match="k.wav: 1 NaN"):
        write_wav(target, bad)
    with pytest.raises(AudioError, match="exceeds full scale"):
        write_wav(target, sine() * 4)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.wav"]


def test_crop_or_pad():
    assert len(crop_or_pad(np.ones(10), 4)) == 4
    padded = crop_or_pad(np.ones(3), 5)
    assert padded.tolist() == [1, 1, 1, 0, 0]
