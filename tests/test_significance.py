"""Paired bootstrap intervals of mean AUC and of differences between systems."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from asdlib.cli import main
from asdlib.metrics import MetricsError, evaluate_scores
from asdlib.reporting import summary_markdown
from asdlib.significance import (BootstrapSettings, PairedBootstrap, compare_runs, compare_systems, holm,
                                 p_value, significance_markdown)

FAST = BootstrapSettings(resamples=400, seed=3)


def _clips(n_normal: int = 12, n_anomaly: int = 12, ids: int = 2, shift: float = 1.0,
           seed: int = 0, condition: str = "clean") -> pd.DataFrame:
    """Test clips of two machine types; anomalous scores drawn ``shift`` above normal ones."""
    rng = np.random.default_rng(seed)
    rows = []
    for machine_type in ("fan", "valve"):
        for k in range(ids):
            for label, n, mean in (("normal", n_normal, 0.0), ("anomaly", n_anomaly, shift)):
                for j, value in enumerate(rng.normal(mean, 1.0, n)):
                    rows.append({"clip_id": f"{machine_type}_id_0{k}_{label}_{j}@{condition}",
                                 "machine_type": machine_type, "machine_id": f"id_0{k}", "label": label,
                                 "condition": condition, "score": value})
    return pd.DataFrame(rows)


def test_observed_value_is_the_published_mean_auc_ties_included():
    clips = _clips(seed=1)
    clips["score"] = clips["score"].round(0)  # many ties: each counts half, as sklearn does
    bootstrap = PairedBootstrap(clips, FAST)
    scores = bootstrap.aligned(clips.sample(frac=1.0, random_state=0), "score", "t")  # any row order
    y = clips["label"] == "anomaly"
    per_id = clips.assign(y=y).groupby(["machine_type", "machine_id"]).apply(
        lambda rows: roc_auc_score(rows["y"], rows["score"]), include_groups=False)
    assert bootstrap.observed(scores) == pytest.approx(per_id.groupby(level=0).mean().mean(), abs=1e-12)
    interval = bootstrap.interval(scores)
    assert interval.low < interval.value < interval.high


def test_observed_value_is_a_mean_over_types_when_types_have_unequal_ids():
    """Fan keeps 2 IDs, valve 1: the mean over types is not the mean over IDs."""
    clips = _clips(seed=4)
    clips = clips[~((clips["machine_type"] == "valve") & (clips["machine_id"] == "id_01"))]
    bootstrap = PairedBootstrap(clips, FAST)
    scores = bootstrap.aligned(clips, "score", "t")
    assert bootstrap.observed(scores) == pytest.approx(evaluate_scores(clips)["overall"]["auc"], abs=1e-6)
    per_id = [v["auc"] for t in ("fan", "valve") for k, v in evaluate_scores(clips)[t].items() if k != "mean"]
    assert bootstrap.observed(scores) != pytest.approx(np.mean(per_id), abs=1e-6)


def test_same_system_differs_by_exactly_nothing_and_a_perfect_one_clearly():
    clips = _clips(shift=0.3)
    bootstrap = PairedBootstrap(clips, FAST)
    weak = bootstrap.aligned(clips, "score", "weak")
    same = bootstrap.difference(weak, weak.copy())
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0) and not same.excludes_zero()
    perfect = (clips["label"] == "anomaly").to_numpy(float)
    assert bootstrap.interval(perfect).as_dict() == {"value": 1.0, "low": 1.0, "high": 1.0}
    better = bootstrap.difference(perfect, weak)
    assert better.low > 0 and better.excludes_zero()


def test_sharing_the_redraws_makes_a_small_difference_visible():
    """Two systems erring on the same clips: their own intervals overlap widely, but
    their difference, judged on the same redraws, is clearly above zero."""
    clips = _clips(shift=0.8, seed=2)
    bootstrap = PairedBootstrap(clips, FAST)
    base = bootstrap.aligned(clips, "score", "base")
    anomalous = (clips["label"] == "anomaly").to_numpy()
    nudged = base + 0.15 * anomalous  # the same errors, each anomaly a little higher
    a, b = bootstrap.interval(nudged), bootstrap.interval(base)
    assert a.low < b.high  # unpaired: the intervals overlap
    difference = bootstrap.difference(nudged, base)
    assert difference.low > 0
    assert difference.high - difference.low < 0.5 * (b.high - b.low)


def test_intervals_cover_the_true_auc_about_as_often_as_they_say():
    """Scores N(0, 1) vs N(d, 1) have AUC Phi(d / sqrt 2); over many simulated test
    sets the 90 % interval must contain it in roughly 90 % of them (binomial
    standard error 0.02 at 200 test sets)."""
    shift = 1.0
    truth = norm.cdf(shift / np.sqrt(2.0))
    settings = BootstrapSettings(resamples=300, confidence=0.9, seed=0)
    hits = 0
    trials = 200
    for trial in range(trials):
        clips = _clips(n_normal=30, n_anomaly=30, ids=2, shift=shift, seed=100 + trial)
        bootstrap = PairedBootstrap(clips, settings)
        interval = bootstrap.interval(bootstrap.aligned(clips, "score", "sim"))
        hits += interval.low <= truth <= interval.high
    assert 0.84 <= hits / trials <= 0.95  # 0.895 here; an 80 % interval gives 0.785


def test_seed_fixes_the_intervals():
    clips = _clips(seed=4)
    first = PairedBootstrap(clips, FAST)
    scores = first.aligned(clips, "score", "t")
    again = PairedBootstrap(clips, FAST)
    other = PairedBootstrap(clips, BootstrapSettings(resamples=400, seed=4))
    assert first.interval(scores) == again.interval(scores)
    assert first.interval(scores) != other.interval(scores)


def test_p_value_is_the_normal_tail_in_units_of_the_redraws_spread():
    draws = np.random.default_rng(0).normal(0.0, 1.0, 4000)
    assert p_value(1.96, draws - draws.mean() + 1.96) == pytest.approx(0.05, rel=0.05)
    assert p_value(-1.96, draws) == p_value(1.96, draws)  # two-sided
    assert p_value(4.0, draws) == pytest.approx(6.3e-5, rel=0.1)  # below the 2 / 4001 a count of redraws could give
    assert p_value(0.0, np.zeros(500)) == 1.0 and p_value(0.1, np.full(500, 0.1)) == 0.0  # no spread
    clips = _clips(shift=0.8, seed=2)
    bootstrap = PairedBootstrap(clips, FAST)
    base = bootstrap.aligned(clips, "score", "base")
    for nudge in (0.0, 0.05, 0.15, 0.4):  # the p-value falls as the interval moves off 0
        difference = bootstrap.difference(base + nudge * (clips["label"] == "anomaly").to_numpy(), base)
        assert (difference.p < 0.05) == difference.excludes_zero()
    assert bootstrap.interval(base).p is None and "p" not in bootstrap.interval(base).as_dict()


def test_holm_steps_down_and_stops_at_the_first_failure():
    assert holm([0.01, 0.02, 0.03], 0.05) == [True, True, True]  # Bonferroni would keep only 0.01
    assert holm([0.01, 0.04, 0.03, 0.005], 0.05) == [True, False, False, True]
    assert holm([0.03, 0.001, 0.2, 0.02], 0.05) == [False, True, False, False]  # 0.02 > 0.05 / 3 stops it
    assert holm([], 0.05) == []


def test_holm_keeps_a_table_of_null_differences_mostly_clean():
    """Twelve systems that score the test clips exactly as well as the baseline in
    expectation: in about a third of simulated test sets some cell of the table misses
    0 by luck, but a cell surviving Holm's correction is rare (fails if the † ignores the family)."""
    families_bold = families_dagger = 0
    trials = 60
    for trial in range(trials):
        clips = _clips(shift=1.0, seed=500 + trial)
        rng = np.random.default_rng(trial)
        anomalous = (clips["label"] == "anomaly").to_numpy()
        systems = {("base", "raw"): (clips, "score", "base.csv")}
        for k in range(12):
            scores = rng.normal(0.0, 1.0, len(clips)) + 1.0 * anomalous
            systems[(f"null{k:02d}", "raw")] = (clips.assign(score=scores), "score", f"null{k}.csv")
        result = compare_systems(systems, ("base", "raw"), FAST)
        table = significance_markdown(result, {"minus_base_raw": "minus base"}, 400, 0.95)
        rows = [line for line in table.splitlines() if line.startswith("| null")]
        assert len(rows) == 12
        families_bold += any("**" in row for row in rows)
        families_dagger += any("†" in row for row in rows)
    assert families_bold / trials >= 0.2  # 22 of 60 here
    assert families_dagger / trials <= 0.1  # 3 of 60 here; uncorrected it would be those 22


def test_bad_inputs_name_the_clip_and_the_file():
    clips = _clips()
    bootstrap = PairedBootstrap(clips, FAST, where="raw.csv")
    with pytest.raises(MetricsError, match=r"mse.csv: no score for clip valve_id_01_anomaly_11@clean of raw.csv"):
        bootstrap.aligned(clips.iloc[:-1], "score", "mse.csv")
    extra = pd.concat([clips, clips.iloc[[0]].assign(clip_id="stray")], ignore_index=True)
    with pytest.raises(MetricsError, match="clip stray is not in raw.csv"):
        bootstrap.aligned(extra, "score", "mse.csv")
    relabelled = clips.copy()
    relabelled.loc[0, "label"] = "anomaly"
    with pytest.raises(MetricsError, match="fan_id_00_normal_0@clean is labelled anomaly, not normal"):
        bootstrap.aligned(relabelled, "score", "mse.csv")
    broken = clips.copy()
    broken.loc[5, "score"] = np.nan
    with pytest.raises(MetricsError, match="NaN or infinite scores .first: clip fan_id_00_normal_5@clean"):
        bootstrap.aligned(broken, "score", "mse.csv")
    no_anomalies = clips[~((clips["machine_id"] == "id_01") & (clips["label"] == "anomaly"))]
    with pytest.raises(MetricsError, match="raw.csv: fan/id_01 needs normal and anomalous clips"):
        PairedBootstrap(no_anomalies, FAST, where="raw.csv")
    with pytest.raises(ValueError, match="resamples"):
        BootstrapSettings(resamples=10)


def _runs(clips: pd.DataFrame, n_runs: int, seed: int) -> list[tuple[pd.DataFrame, str, str]]:
    """Training runs of one system as score tables: each run weighs an informative
    feature (the clips' ``score``) and a clip-wise noise feature shared by every run
    at its own random angle, so runs differ in how well they rank these very clips."""
    rng = np.random.default_rng(seed)
    noise = np.random.default_rng(12345).normal(0.0, 1.0, len(clips))
    return [(clips.assign(score=np.cos(angle) * clips["score"] + np.sin(angle) * noise), "score", f"run{k}")
            for k, angle in enumerate(rng.uniform(0.0, 1.4, n_runs))]


def test_one_run_per_side_is_the_paired_bootstrap():
    clips = _clips(shift=0.8, seed=5)
    a, b = _runs(clips, 2, seed=1)
    result = compare_runs([a], [b], FAST)["clean"]
    bootstrap = PairedBootstrap(clips, FAST)
    scores_a, scores_b = (bootstrap.aligned(frame, "score", "t") for frame, _, _ in (a, b))
    assert result.a == bootstrap.interval(scores_a) and result.b == bootstrap.interval(scores_b)
    assert result.difference == bootstrap.difference(scores_a, scores_b)
    assert result.runs_a == [bootstrap.observed(scores_a)]


def test_several_runs_widen_the_intervals_by_the_spread_between_runs():
    """Two sides from one training process differ by nothing in expectation. Judged
    on one run each, the test clips alone often vouch for a difference that is only
    training luck; with five runs a side, redrawing the runs too, the 95 % interval
    holds 0 about as often as it says (fails if the runs are not redrawn)."""
    single_holds = runs_hold = 0
    trials = 40
    for trial in range(trials):
        clips = _clips(n_normal=20, n_anomaly=20, shift=1.5, seed=200 + trial)
        side_a, side_b = _runs(clips, 5, seed=2 * trial), _runs(clips, 5, seed=2 * trial + 1)
        single = compare_runs(side_a[:1], side_b[:1], FAST)["clean"].difference
        several = compare_runs(side_a, side_b, FAST)["clean"]
        assert several.a.value == pytest.approx(np.mean(several.runs_a))
        single_holds += not single.excludes_zero()
        runs_hold += not several.difference.excludes_zero()
    assert runs_hold / trials >= 0.85
    assert single_holds / trials <= runs_hold / trials - 0.25


def test_compare_runs_needs_shared_conditions_and_the_same_clips():
    clips = _clips(seed=6)
    (a, _, _), = _runs(clips, 1, seed=0)
    with pytest.raises(MetricsError, match="share no condition"):
        compare_runs([(a, "score", "a.csv")], [(a.assign(condition="0dB"), "score", "b.csv")], FAST)
    with pytest.raises(MetricsError, match=r"b2.csv \(clean\): no score for clip fan_id_00_normal_0@clean"):
        compare_runs([(a, "score", "a.csv")], [(a, "score", "b1.csv"), (a.iloc[1:], "score", "b2.csv")], FAST)
    with pytest.raises(MetricsError, match="at least one score table"):
        compare_runs([(a, "score", "a.csv")], [], FAST)


def _systems() -> dict:
    frames = []
    for k, condition in enumerate(("clean", "-6dB")):
        frames.append(_clips(seed=k, condition=condition, shift=2.0 if condition == "clean" else 0.2))
    raw = pd.concat(frames, ignore_index=True)
    mse = raw.assign(score=raw["score"] + np.random.default_rng(9).normal(0, 0.5, len(raw)))
    other = raw.assign(score=np.random.default_rng(8).normal(0, 1, len(raw)))
    return {("dense_ae", "raw"): (raw, "score", "dense_ae/raw.csv"),
            ("dense_ae", "mse"): (mse, "score", "dense_ae/mse.csv"),
            ("chance", "raw"): (other, "score", "chance/raw.csv")}


def test_compare_systems_and_its_markdown():
    systems = _systems()
    result = compare_systems(systems, ("dense_ae", "raw"), FAST)
    assert set(result) == {"auc", "mse_minus_raw", "minus_dense_ae_raw"}
    assert set(result["mse_minus_raw"]) == {"dense_ae"}  # "chance" has no mse input
    assert set(result["minus_dense_ae_raw"]) == {"dense_ae", "chance"}
    assert set(result["minus_dense_ae_raw"]["dense_ae"]) == {"mse"}  # never the baseline against itself
    raw_clean = evaluate_scores(systems[("dense_ae", "raw")][0].query("condition == 'clean'"))
    assert result["auc"]["dense_ae"]["raw"]["clean"]["value"] == pytest.approx(raw_clean["overall"]["auc"], abs=1e-6)
    chance_clean = result["minus_dense_ae_raw"]["chance"]["raw"]["clean"]
    assert chance_clean["high"] < 0  # a random scorer is clearly below a good one
    assert result["mse_minus_raw"]["dense_ae"]["clean"] == pytest.approx(
        {k: result["auc"]["dense_ae"]["mse"]["clean"]["value"] - result["auc"]["dense_ae"]["raw"]["clean"]["value"]
         if k == "value" else result["mse_minus_raw"]["dense_ae"]["clean"][k] for k in ("value", "low", "high", "p")},
        abs=2e-6)
    text = significance_markdown(result, {"mse_minus_raw": "MSE minus raw",
                                          "minus_dense_ae_raw": "minus dense_ae / raw"}, 400, 0.95)
    row = next(line for line in text.splitlines() if line.startswith("| chance / raw |"))
    cells = row.strip("|").split("|")[1:]
    assert "**" in cells[1] and cells[1].strip().startswith("**-")  # clean: bold, below the baseline
    assert cells[1].strip().endswith("†")  # and far beyond what the table's number of cells explains
    assert "1 of 4 cells survive Holm's correction (†)." in text.split("### minus dense_ae / raw")[1]
    assert text.index("### MSE minus raw") < text.index("### minus dense_ae / raw")
    assert "| system | -6dB | clean |" in text
    unbolded = [c for c in cells if "**" not in c]
    for cell in unbolded:  # every cell without bold has an interval holding zero
        low, high = (float(v) for v in cell.split("[")[1].rstrip("] ").split(","))
        assert low <= 0 <= high
    clean = systems[("dense_ae", "raw")][0].query("condition == 'clean'")
    metrics = {"dense_ae": {"raw": {"clean": evaluate_scores(clean)}}}
    summary = summary_markdown(metrics, after_overall=text)
    assert summary.index("## Are the differences real?") < summary.index("## Per machine type")


def test_a_system_scoring_other_clips_is_an_error_naming_its_file():
    systems = _systems()
    raw = systems[("chance", "raw")][0]
    systems[("chance", "raw")] = (raw.iloc[1:], "score", "chance/raw.csv")
    expected = (r"chance/raw.csv score \(clean\): no score for clip fan_id_00_normal_0@clean "
                r"of dense_ae/raw.csv \(clean\)")
    with pytest.raises(MetricsError, match=expected):
        compare_systems(systems, ("dense_ae", "raw"), FAST)


def test_asd_compare_prints_each_condition_and_marks_a_clear_difference(tmp_path, capsys):
    systems = _systems()
    raw, _, _ = systems[("dense_ae", "raw")]
    chance, _, _ = systems[("chance", "raw")]
    raw.to_csv(tmp_path / "a.csv", index=False)
    chance.rename(columns={"score": "score_knn"}).to_csv(tmp_path / "b.csv", index=False)
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--column-b", "score_knn",
                 "--resamples", "400"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in out if line.split() and line.split()[0] in ("clean", "-6dB")}
    assert list(rows) == ["-6dB", "clean"]  # noisiest first
    assert rows["clean"].endswith(" *†")  # a good scorer against a random one
    assert float(rows["clean"].split()[-2]) < 0.01  # its p-value
    assert out[-1] == "*: the interval excludes 0; †: p also survives Holm's correction over the 2 conditions"
    chance.query("condition == 'clean'").to_csv(tmp_path / "clean.csv", index=False)
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "clean.csv"), "--resamples", "100"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "left out (not in every table): -6dB"
    auc_a = float(rows["clean"].split()[1])
    assert auc_a == pytest.approx(evaluate_scores(raw.query("condition == 'clean'"))["overall"]["auc"], abs=1e-3)


def test_asd_compare_errors_name_the_file(tmp_path, capsys):
    systems = _systems()
    raw, _, _ = systems[("dense_ae", "raw")]
    raw.to_csv(tmp_path / "a.csv", index=False)
    raw.iloc[3:].to_csv(tmp_path / "short.csv", index=False)
    raw.assign(condition="0dB").to_csv(tmp_path / "other.csv", index=False)
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: no such score table" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "short.csv")]) == 2
    assert "short.csv (clean): no score for clip fan_id_00_normal_0@clean" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "other.csv")]) == 2
    assert "share no condition" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "a.csv"), "--column", "nope"]) == 2
    assert "lacks columns ['nope']" in capsys.readouterr().err


def test_asd_compare_runs_of_each_side(tmp_path, capsys):
    clips = _clips(n_normal=20, n_anomaly=20, shift=1.5, seed=7)
    paths = {}
    for side, seed in (("a", 1), ("b", 2)):
        for k, (frame, _, _) in enumerate(_runs(clips, 3, seed)):
            paths.setdefault(side, []).append(str(tmp_path / f"{side}{k}.csv"))
            frame.to_csv(paths[side][-1], index=False)
    assert main(["compare", *paths["a"], "--vs", *paths["b"], "--resamples", "400"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"A: mean of 3 runs: {', '.join(paths['a'])} (score)\n")
    assert "bootstrap over the test clips and between runs" in out
    row = next(line for line in out.splitlines() if line.startswith("clean "))
    runs = next(line for line in out.splitlines()[out.splitlines().index("each run's mean AUC:"):]
                if line.startswith("clean "))
    run_values = [float(v) for v in runs.split()[2:5]]
    assert float(row.split()[1]) == pytest.approx(np.mean(run_values), abs=2e-3)
    assert main(["compare", *paths["a"]]) == 2
    assert "give two score tables (A B), or A's runs then --vs and B's runs; got 3" in capsys.readouterr().err


def test_compare_leaves_out_the_training_clips(tmp_path, capsys):
    """A table of `asd score --manifest` without --splits holds the training clips too;
    the test clips alone are compared, as `asd score` reports their AUC, and it says so."""
    clips = _clips(seed=8).assign(split="test")
    trained = _clips(seed=9, shift=4.0).assign(split="train")  # fitted clips: far too easy
    trained["clip_id"] = "train_" + trained["clip_id"]
    a, b = _runs(clips, 2, seed=4)
    tested = compare_runs([a], [b], FAST)["clean"]
    with_training = compare_runs([(pd.concat([a[0], trained]), "score", "a")],
                                 [(pd.concat([b[0], trained]), "score", "b")], FAST)["clean"]
    assert with_training == tested
    pd.concat([a[0], trained]).to_csv(tmp_path / "a.csv", index=False)
    b[0].to_csv(tmp_path / "b.csv", index=False)
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--resamples", "400",
                 "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "over the test clips (400 redraws); the tables' training clips are left out" in out
    assert f"clean      {tested.a.text():<22} {tested.b.text():<22}" in out
    assert main(["compare", str(tmp_path / "b.csv"), str(tmp_path / "b.csv"), "--resamples", "400"]) == 0
    assert "left out" not in capsys.readouterr().out
