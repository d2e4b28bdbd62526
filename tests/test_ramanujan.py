"""Ramanujan sums, fold means, S_q projections and the all-period energy plan."""

from math import gcd

import numpy as np
import pytest

from asdlib.ramanujan import (
    BandNoise,
    EnergyPlan,
    coprime_bins,
    fold_mean,
    mobius,
    mobius_table,
    prime_factors,
    project,
    ramanujan_energy,
    ramanujan_sum,
    tile,
    totient,
    totient_table,
)


def tiled_basis(q: int, n: int) -> np.ndarray:
    """The q circular shifts of c_q, each tiled to length n (columns)."""
    c = ramanujan_sum(q).astype(np.float64)
    return np.stack([np.resize(np.roll(c, shift), n) for shift in range(q)], axis=1)


@pytest.mark.parametrize("q", range(1, 101))
def test_ramanujan_sum_matches_definition(q):
    k = np.array([k for k in range(1, q + 1) if gcd(k, q) == 1])
    n = np.arange(q)
    direct = np.exp(2j * np.pi * np.outer(n, k) / q).sum(axis=1)
    assert np.allclose(direct.imag, 0.0, atol=1e-9)
    np.testing.assert_array_equal(ramanujan_sum(q), np.rint(direct.real).astype(np.int64))


def test_number_theory_helpers_agree_with_definitions():
    phi, mu = totient_table(200), mobius_table(200)
    for q in range(1, 201):
        assert totient(q) == sum(1 for k in range(1, q + 1) if gcd(k, q) == 1) == phi[q]
        factors = prime_factors(q)
        assert int(np.prod([p**a for p, a in factors.items()])) == q
        expected = 0 if any(a > 1 for a in factors.values()) else (-1) ** len(factors)
        assert mobius(q) == expected == mu[q]
        assert coprime_bins(q).sum() == len([k for k in range(q // 2 + 1) if gcd(k, q) == 1])
    with pytest.raises(ValueError, match="positive integer"):
        totient(0)


@pytest.mark.parametrize("n, q", [(100, 7), (101, 10), (37, 37), (50, 1), (1000, 333)])
def test_fold_mean_counts_each_phase(n, q):
    x = np.random.default_rng(n + q).standard_normal(n)
    expected = np.array([x[j::q].mean() for j in range(q)])
    np.testing.assert_allclose(fold_mean(x, q), expected, rtol=1e-12, atol=1e-12)


def test_fold_mean_rejects_a_period_longer_than_the_signal():
    with pytest.raises(ValueError, match="longer than the signal"):
        fold_mean(np.ones(5), 6)


@pytest.mark.parametrize("q, repeats", [(1, 30), (2, 17), (6, 9), (12, 7), (30, 4), (37, 3), (64, 2)])
def test_project_equals_least_squares_on_tiled_basis(q, repeats):
    n = q * repeats
    x = np.random.default_rng(q).standard_normal(n)
    basis = tiled_basis(q, n)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    p = project(x, q)
    np.testing.assert_allclose(p, basis @ coef, atol=1e-10)
    assert np.linalg.matrix_rank(basis) == totient(q)
    assert abs(np.dot(x - p, p)) < 1e-9 * np.dot(x, x)  # residual orthogonal to the projection
    assert np.sum(p**2) == pytest.approx(ramanujan_energy(x, q), rel=1e-10)


@pytest.mark.parametrize("n, q", [(120, 12), (121, 12), (1000, 97), (999, 250)])
def test_project_is_idempotent_and_q_periodic(n, q):
    x = np.random.default_rng(n).standard_normal(n)
    p = project(x, q)
    np.testing.assert_allclose(project(p, q), p, atol=1e-12)
    np.testing.assert_allclose(p[q:], p[:-q], atol=1e-12)
    assert p.shape == x.shape


def test_project_lies_in_s_q_not_in_its_divisors():
    x = np.random.default_rng(3).standard_normal(12 * 10)
    p = project(x, 12)
    for d in (1, 2, 3, 4, 6):
        assert np.max(np.abs(project(p, d))) < 1e-12


def test_project_keeps_float32_and_rejects_bad_input():
    x = np.random.default_rng(0).standard_normal(500).astype(np.float32)
    assert project(x, 10).dtype == np.float32
    assert project(np.arange(20), 4).dtype == np.float64
    with pytest.raises(ValueError, match="1-D"):
        project(np.ones((2, 10)), 2)
    with pytest.raises(ValueError, match="positive integer"):
        project(x, 0)


def test_tile_repeats_with_a_partial_last_period():
    period = np.arange(7.0)
    np.testing.assert_array_equal(tile(period, 30), np.resize(period, 30))
    np.testing.assert_array_equal(tile(period, 3), period[:3])
    with pytest.raises(ValueError, match="empty"):
        tile(np.zeros(0), 5)


@pytest.mark.parametrize(
    "n, q_min, q_max", [(30, 1, 14), (90, 2, 44), (1000, 1, 200), (1001, 2, 300), (5003, 20, 600), (4096, 2, 1024)]
)
def test_energy_plan_matches_direct_fold_energies(n, q_min, q_max):
    x = np.random.default_rng(n).standard_normal(n) + 0.3
    plan = EnergyPlan(n, q_min, q_max)
    e_s, e_v = plan.energies(x)
    direct_s = np.array([ramanujan_energy(x, q) for q in plan.periods])
    direct_v = np.array([q * np.sum(_fold_sums(x, q) ** 2) / n for q in plan.periods])
    scale = np.dot(x, x) / n
    np.testing.assert_allclose(e_s, direct_s, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(e_v, direct_v, rtol=1e-9)
    assert np.all(e_s > -1e-10 * scale)
    assert np.argmax(e_s / plan.phi) == np.argmax(direct_s / plan.phi)


def _fold_sums(x, q):
    return np.array([x[j::q].sum() for j in range(q)])


def test_periodic_energy_is_the_sum_of_its_ramanujan_parts():
    n = 2000
    x = np.random.default_rng(1).standard_normal(n)
    plan = EnergyPlan(n, 1, 100)
    e_s, e_v = plan.energies(x)
    for q in (12, 30, 64, 97, 100):
        divisors = [d for d in range(1, q + 1) if q % d == 0]
        assert e_v[q - 1] == pytest.approx(sum(e_s[d - 1] for d in divisors), rel=1e-10)


def test_ramanujan_energy_is_the_projection_energy_when_q_divides_n():
    x = np.random.default_rng(2).standard_normal(1200)
    for q in (5, 24, 100, 300):
        assert ramanujan_energy(x, q) == pytest.approx(np.sum(project(x, q) ** 2), rel=1e-10)


def test_energy_plan_rejects_bad_ranges():
    with pytest.raises(ValueError, match="q_max"):
        EnergyPlan(100, 2, 100)
    with pytest.raises(ValueError, match="q_min"):
        EnergyPlan(100, 0, 10)


def test_band_noise_expects_phi_sigma2_for_white_noise():
    n = 32000
    periods = np.arange(2, 513)
    model = BandNoise(n, periods, 48)
    np.testing.assert_array_equal(model.counts.sum(axis=1), totient_table(512)[2:])
    x = 0.5 * np.random.default_rng(4).standard_normal(n)
    per_dimension = model.expected_energies(x) / model.counts.sum(axis=1)
    np.testing.assert_allclose(per_dimension, 0.25, rtol=0.1)


def test_band_noise_follows_a_coloured_spectrum_and_ignores_tones():
    n = 32000
    rng = np.random.default_rng(5)
    white = rng.standard_normal(n)
    freqs = np.fft.rfftfreq(n)
    brown = np.fft.irfft(np.fft.rfft(white) / np.maximum(freqs, 1e-3), n)
    model = BandNoise(n, np.arange(2, 1025), 48)
    levels = model.levels(brown)
    assert levels[0] > 100 * levels[-1]  # low bands carry far more noise than high ones
    t = np.arange(n)
    tones = 50 * np.std(white) * sum(np.cos(2 * np.pi * k * t / 100) for k in range(1, 20))
    np.testing.assert_allclose(model.levels(white + tones), model.levels(white), rtol=0.1)
