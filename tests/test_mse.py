"""Mechanical Sound Extraction: settings, scores, stop rule, error elimination, bad input."""

import math

import numpy as np
import pytest

from asdlib.config import ConfigError, parse
from asdlib import mse as mse_module
from asdlib.mse import MseResult, MseSettings, choose_result, extract, period_scores
from asdlib.ramanujan import BandNoise, fold_mean, project, ramanujan_energy, totient

SMALL = MseSettings(q_min=2, q_max=512)


def planted(n, periods, snr_db, seed, colour="white"):
    """(clean, noisy): equal-power random periodic sources plus noise at snr_db."""
    rng = np.random.default_rng(seed)
    clean = np.zeros(n)
    for q in periods:
        part = np.resize(rng.standard_normal(q), n)
        clean += part / np.std(part)
    noise = rng.standard_normal(n)
    if colour == "brown":
        freqs = np.fft.rfftfreq(n)
        noise = np.fft.irfft(np.fft.rfft(noise) / np.maximum(freqs, 2e-3), n)
    noise *= math.sqrt(np.sum(clean**2) / np.sum(noise**2) / 10 ** (snr_db / 10))
    return clean, clean + noise


def snr(clean, estimate):
    return 10 * math.log10(np.sum(clean**2) / np.sum((estimate - clean) ** 2))


# --- settings ---------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("q_min", 0),
        ("q_max", 1),
        ("max_steps", 0),
        ("min_gain", -0.1),
        ("min_gain", 1.0),
        ("m_divisions", 0),
        ("score", "loudest"),
        ("noise_penalty", 0.0),
        ("noise_penalty", float("nan")),
        ("noise_bands", 0),
        ("q_max", 1024.0),
        ("m_divisions", 1.5),
        ("max_steps", True),
    ],
)
def test_settings_reject_out_of_range_values_naming_the_field(field, value):
    kwargs = {"q_min": 2} if field == "q_max" else {}
    with pytest.raises(ValueError, match=field):
        MseSettings(**kwargs, **{field: value})


def test_settings_parse_from_a_yaml_mapping():
    settings = parse(MseSettings, {"q_max": 640, "score": "per_dimension", "min_gain": 0}, "params.yaml: mse")
    assert settings.q_max == 640 and settings.score == "per_dimension" and settings.min_gain == 0.0
    with pytest.raises(ConfigError, match="params.yaml: mse.qmax"):
        parse(MseSettings, {"qmax": 640}, "params.yaml: mse")


# --- error elimination ------------------------------------------------------


@pytest.mark.parametrize(
    "trace, target, m, expected",
    [
        ([-5.0, -1.0, 2.0], 0.0, 2, True),  # t = -1 + 3/2 = 0.5 >= 0: previous is nearer
        ([-5.0, -1.0, 2.0], 1.0, 2, False),  # t = 0.5 < 1: the full result is nearer
        ([-5.0, -1.0, 2.0], 0.5, 2, True),  # on the threshold: previous
        ([-5.0, -1.0, 2.0], 0.0, 4, False),  # t = -0.25 < 0
        ([-5.0, -1.0, 2.0], -0.5, 4, True),  # t = -0.25 >= -0.5
        ([-1.0, 2.0], 1.9, 1, True),  # M_ = 1: t = s_b, previous whenever crossed
        ([3.0], 0.0, 2, False),  # one step: no previous ratio, keep the result
        ([-5.0, -1.0], 0.0, 2, False),  # target not reached (other stop): keep
        ([], 0.0, 2, False),
    ],
)
def test_choose_result_on_hand_made_traces(trace, target, m, expected):
    assert choose_result(np.array(trace), target, m) is expected


def test_period_scores_follow_their_definitions():
    energies = np.array([4.0, 9.0, 30.0])
    noise = np.array([1.0, 2.0, 20.0])
    phi = np.array([1.0, 2.0, 16.0])
    np.testing.assert_allclose(period_scores(energies, noise, phi, MseSettings(score="per_dimension")), [4, 4.5, 1.5])
    np.testing.assert_allclose(
        period_scores(energies, noise, phi, MseSettings(score="penalised", noise_penalty=2.0)), [2, 5, -10]
    )
    np.testing.assert_allclose(
        period_scores(energies, noise, phi, MseSettings(score="significance")), [3, 3.5 * math.sqrt(2), 0.5 * 4]
    )


# --- the pursuit --------------------------------------------------------------


@pytest.mark.parametrize("score", ["significance", "per_dimension", "penalised"])
def test_planted_periods_are_recovered_in_white_noise_at_0db(score):
    periods = (37, 100, 250)
    clean, noisy = planted(16000, periods, 0.0, seed=11)
    result = extract(noisy, 0.0, MseSettings(q_max=512, score=score, min_gain=0.0, max_steps=14))
    chosen = list(result.periods)
    assert set(periods) <= set(chosen)
    first = chosen[:8]
    assert all(any(p % q == 0 for p in periods) for q in first), first  # every early pick is part of a source
    assert snr(clean, result.signal) > 6.0  # 0 dB in


def test_planted_periods_are_recovered_in_brown_noise_at_0db():
    periods = (37, 100, 250)
    clean, noisy = planted(16000, periods, 0.0, seed=12, colour="brown")
    result = extract(noisy, 0.0, MseSettings(q_max=512, min_gain=0.0, max_steps=14))
    assert set(periods) <= set(result.periods)
    assert snr(clean, result.signal) > 6.0


def test_first_step_selects_what_a_brute_force_scan_selects():
    clean, noisy = planted(6000, (45, 120), -3.0, seed=5)
    for score in ("significance", "per_dimension", "penalised"):
        settings = MseSettings(q_min=3, q_max=700, score=score, max_steps=1)
        candidates = np.arange(3, 701)
        energies = np.array([ramanujan_energy(noisy, q) for q in candidates])
        noise = BandNoise(6000, candidates, settings.noise_bands).expected_energies(noisy)
        phi = np.array([totient(q) for q in candidates])
        best = candidates[np.argmax(period_scores(energies, noise, phi, settings))]
        result = extract(noisy, 100.0, settings)
        assert result.periods[0] == best
        np.testing.assert_allclose(result.signal, project(noisy, int(best)), atol=1e-12)


def test_stop_rule_and_error_elimination_on_a_real_trace():
    _, noisy = planted(8000, (50, 160), 3.0, seed=2)
    outcomes = set()
    for target in (-5.0, -4.0, -0.5, 0.5, 1.5, 2.0):
        result = extract(noisy, target, SMALL)
        trace = result.snr_trace
        assert result.stopped_by == "snr"
        assert trace[-1] >= target and np.all(trace[:-1] < target)
        assert result.used_previous == choose_result(trace, target, SMALL.m_divisions)
        full = result.previous + project(noisy - result.previous, int(result.periods[-1]))
        assert 10 * math.log10(np.sum(full**2) / np.sum((noisy - full) ** 2)) == pytest.approx(trace[-1])
        expected = result.previous if result.used_previous else full
        np.testing.assert_allclose(result.signal, expected, atol=1e-9)
        outcomes.add(result.used_previous)
    assert outcomes == {True, False}  # both branches of the elimination were exercised


def test_one_step_result_never_returns_the_empty_previous():
    _, noisy = planted(8000, (64,), 20.0, seed=3)
    result = extract(noisy, -30.0, SMALL)
    assert result.steps == 1 and result.stopped_by == "snr"
    assert not result.used_previous
    assert np.all(result.previous == 0) and np.any(result.signal != 0)


def test_huge_snr_target_stops_at_max_steps():
    _, noisy = planted(8000, (40, 90), 0.0, seed=4)
    result = extract(noisy, 1e6, MseSettings(q_max=512, max_steps=9, min_gain=0.0))
    assert result.stopped_by == "max_steps" and result.steps == 9
    assert result.snr_trace.shape == (9,) and result.snr_trace.dtype == np.float64
    assert np.all(np.diff(result.snr_trace) >= 0)  # extracting more never lowers the ratio
    assert not result.used_previous


def test_min_gain_stops_once_only_noise_is_left():
    rng = np.random.default_rng(6)
    n = 8192
    periodic = np.resize(rng.standard_normal(64), n)
    periodic -= periodic.mean()
    x = periodic + 0.05 * rng.standard_normal(n)
    result = extract(x, 1e6, MseSettings(q_max=512, min_gain=0.2, max_steps=30))
    assert result.stopped_by == "min_gain"
    assert all(64 % q == 0 for q in result.periods[:-1])  # every useful step was part of the period


def test_all_zero_clip_is_returned_with_a_warning():
    for dtype in (np.float32, np.float64):
        with pytest.warns(UserWarning, match="silent_clip"):
            result = extract(np.zeros(4000, dtype=dtype), 0.0, SMALL, name="silent_clip")
        assert result.stopped_by == "silent" and result.steps == 0
        assert result.signal.dtype == dtype and not np.any(result.signal)
        assert not np.any(np.isnan(result.signal))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_an_error_naming_the_clip(bad):
    x = np.random.default_rng(0).standard_normal(4000)
    x[123] = bad
    with pytest.raises(ValueError, match="fan_id_00_0001"):
        extract(x, 0.0, SMALL, name="fan_id_00_0001")


def test_short_clip_is_an_error_naming_the_clip_and_the_limit():
    x = np.random.default_rng(0).standard_normal(1023)
    with pytest.raises(ValueError, match=r"short_clip.*2 \* q_max = 1024"):
        extract(x, 0.0, SMALL, name="short_clip")
    assert extract(np.resize(x, 1024), 0.0, SMALL).steps >= 1  # exactly 2 * q_max is fine


def test_other_bad_input_is_an_error_naming_the_clip():
    x = np.random.default_rng(0).standard_normal(4000)
    with pytest.raises(ValueError, match="stereo.*1-D"):
        extract(np.stack([x, x]), 0.0, SMALL, name="stereo")
    with pytest.raises(ValueError, match="ints.*float"):
        extract((x * 1000).astype(np.int16), 0.0, SMALL, name="ints")
    with pytest.raises(ValueError, match="nan_target.*snr_db"):
        extract(x, float("nan"), SMALL, name="nan_target")
    with pytest.raises(ValueError, match="text_target: snr_db must be a number, got 'high'"):
        extract(x, "high", SMALL, name="text_target")


def test_float32_and_float64_give_the_same_extraction():
    _, noisy = planted(8000, (37, 100), 0.0, seed=7)
    r64 = extract(noisy, 0.0, SMALL)
    r32 = extract(noisy.astype(np.float32), 0.0, SMALL)
    assert r64.signal.dtype == np.float64 and r32.signal.dtype == np.float32
    assert r32.previous.dtype == np.float32
    np.testing.assert_array_equal(r64.periods, r32.periods)
    np.testing.assert_allclose(r32.signal, r64.signal, atol=1e-5 * np.abs(r64.signal).max())


def test_extraction_is_deterministic_and_leaves_the_input_alone():
    _, noisy = planted(8000, (30, 200), 0.0, seed=8)
    original = noisy.copy()
    a, b = extract(noisy, 1.0, SMALL), extract(noisy.copy(), 1.0, SMALL)
    np.testing.assert_array_equal(noisy, original)
    assert a.signal.tobytes() == b.signal.tobytes()
    assert a.snr_trace.tobytes() == b.snr_trace.tobytes()
    np.testing.assert_array_equal(a.periods, b.periods)


def test_result_fields_have_the_documented_types():
    _, noisy = planted(4096, (50,), 0.0, seed=9)
    result = extract(noisy.astype(np.float32), 0.0, SMALL)
    assert isinstance(result, MseResult)
    assert result.signal.shape == result.previous.shape == noisy.shape
    assert result.periods.dtype == np.int64 and result.steps == result.periods.size == result.snr_trace.size
    with pytest.raises(AttributeError):
        result.stopped_by = "snr"  # frozen


def test_clean_periodic_clip_is_extracted_exactly():
    rng = np.random.default_rng(10)
    period = rng.standard_normal(100)
    period -= period.mean()  # S_1 (the mean) is below q_min
    x = np.resize(period, 10000)
    # The last step (the small S_2 part) overshoots 60 dB to the 300 dB cap: M_ = 2
    # returns the nearer previous extraction, a large M_ the full one.
    nearer = extract(x, 60.0, SMALL)
    assert nearer.used_previous and set(nearer.periods) == {2, 4, 5, 10, 20, 25, 50, 100}
    full = extract(x, 60.0, MseSettings(q_max=512, m_divisions=1000))
    assert not full.used_previous and full.snr_trace[-1] == pytest.approx(300.0)
    np.testing.assert_allclose(fold_mean(full.signal, 100), period, atol=1e-12)


def test_clip_too_quiet_for_the_energy_floor_still_extracts():
    rng = np.random.default_rng(1)
    x = 1e-160 * np.resize(rng.standard_normal(97), 8001)  # 1e-30 of its energy underflows to 0
    result = extract(x, 10.0, MseSettings(q_max=256), name="quiet")
    assert np.all(np.isfinite(result.snr_trace)) and result.steps >= 1


def test_extraction_is_the_same_at_any_level():
    """Scaled by a power of two: the same bits, scaled; by 1e154 (energies over float64's range)
    or 1e-160 (under it): the same periods and a finite trace."""
    rng = np.random.default_rng(2)
    x = np.resize(rng.standard_normal(97), 8001) + 0.5 * rng.standard_normal(8001)
    base = extract(x, 3.0, MseSettings(q_max=256))
    doubled = extract(np.ldexp(x, 300), 3.0, MseSettings(q_max=256))
    assert np.array_equal(doubled.signal, np.ldexp(base.signal, 300))
    assert np.array_equal(doubled.snr_trace, base.snr_trace)
    for level in (1e154, 1e-160):
        scaled = extract(level * x, 3.0, MseSettings(q_max=256))
        assert np.array_equal(scaled.periods, base.periods), level
        assert np.all(np.isfinite(scaled.snr_trace)) and np.all(np.isfinite(scaled.signal))
        np.testing.assert_allclose(scaled.signal / level, base.signal, rtol=1e-9, atol=1e-12)


def test_a_step_that_would_grow_the_residual_is_not_taken(monkeypatch):
    """Where q does not divide the length the projection is inexact and can, on built inputs,
    leave more energy than before: such a step is refused (here forced by a projection that
    doubles the residual)."""
    monkeypatch.setattr(mse_module, "project", lambda residual, q: -residual)
    x = np.resize(np.random.default_rng(3).standard_normal(97), 8001)
    result = extract(x, 20.0, MseSettings(q_max=256))
    assert result.steps == 0 and result.stopped_by == "min_gain" and not result.signal.any()


def test_an_exhausted_period_is_never_picked_again():
    """Every period divides the length, so each removal is exact: once 2..8 are out, nothing
    is left to take, and the pursuit says so instead of re-picking an empty period."""
    rng = np.random.default_rng(0)
    x = np.resize(rng.standard_normal(4), 840)
    x = x - x.mean() + rng.standard_normal(840)
    result = extract(x, 30.0, MseSettings(q_min=2, q_max=8, max_steps=12, min_gain=0.0))
    assert sorted(result.periods.tolist()) == list(range(2, 9))
    assert result.stopped_by == "silent"
