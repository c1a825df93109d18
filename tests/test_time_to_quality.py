"""The time-to-quality benchmark's reading of its curves: crossing times, FCD at a time, the seeds'
95% intervals and the verdict against the baseline (benchmarks/time_to_quality.py)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "time_to_quality.py"
spec = importlib.util.spec_from_file_location("time_to_quality", SCRIPT)
ttq = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ttq)


def test_time_to_reach_interpolates_between_the_evaluations_around_the_crossing():
    times, fcds = [30.0, 60.0, 90.0], [200.0, 80.0, 50.0]
    assert ttq.time_to_reach(times, fcds, 100.0) == pytest.approx(30 + 30 * 100 / 120)
    assert ttq.time_to_reach(times, fcds, 50.0) == 90.0
    assert ttq.time_to_reach(times, fcds, 300.0) == 30.0, "reached at the first evaluation"
    assert ttq.time_to_reach(times, fcds, 25.0) is None
    assert ttq.time_to_reach([10.0, 20.0, 30.0], [90.0, 120.0, 70.0], 100.0) == 10.0, "the first crossing counts"


def test_fcd_at_a_time_between_evaluations_and_none_outside_them():
    times, fcds = [30.0, 60.0], [200.0, 80.0]
    assert ttq.fcd_at(times, fcds, 45.0) == pytest.approx(140.0)
    assert ttq.fcd_at(times, fcds, 10.0) is None
    assert ttq.fcd_at([60.03, 120.0], fcds, 60.0) == 200.0, "the evaluation due at 60 s, a loss read later"
    assert ttq.fcd_at(times, fcds, 70.0) is None
    assert ttq.fcd_at(times, fcds, 70.0, slack_s=30.0) == 80.0, "a budget's end, evaluated a step after it"


def test_interval_is_the_t_interval_of_the_seeds_mean_open_where_a_seed_never_got_there():
    cell = ttq.interval([10.0, 12.0, 14.0])
    half = 4.302652729911275 * 2.0 / math.sqrt(3)  # t(0.975, 2 degrees of freedom) * sd / sqrt(n)
    assert (cell["mean"], cell["median"]) == (12.0, 12.0)
    assert (cell["low"], cell["high"]) == pytest.approx((12.0 - half, 12.0 + half), rel=1e-9)
    partial = ttq.interval([10.0, 12.0, None])
    assert partial["mean"] is None and partial["high"] == math.inf and partial["median"] == 12.0
    assert partial["low"] == pytest.approx(11.0 - 12.706204736 * math.sqrt(2) / math.sqrt(2), rel=1e-6)
    never = ttq.interval([None, None, None])
    assert (never["reached"], never["low"], never["high"], never["median"]) == (0, math.inf, math.inf, None)


def test_a_lever_counts_only_where_its_interval_clears_the_baselines():
    base = ttq.interval([100.0, 110.0, 120.0])
    assert ttq.verdict(ttq.interval([30.0, 31.0, 32.0]), base) == "better"
    assert ttq.verdict(ttq.interval([300.0, 310.0, 320.0]), base) == "worse"
    assert ttq.verdict(ttq.interval([90.0, 115.0, 140.0]), base) == "same"
    never = ttq.interval([None, None, None])
    assert ttq.verdict(ttq.interval([30.0, 31.0, 32.0]), never) == "better", "reached where the baseline never did"
    assert ttq.verdict(never, never) == "same"
    assert ttq.verdict(never, base) == "worse"


def test_the_summary_marks_each_variant_against_the_first():
    baseline = [([60.0, 120.0, 180.0], [150.0, 90.0, 70.0 + s]) for s in range(3)]
    lever = [([60.0, 120.0, 180.0], [60.0, 38.0 + s, 30.0]) for s in range(3)]
    summary = ttq.summarise({"quick-before": baseline, "quick": lever}, budget_s=180.0, eval_every_s=60.0)
    assert summary["quick-before"]["fcd_at_seconds"]["60.0"]["vs_baseline"] == "baseline"
    assert summary["quick"]["fcd_at_seconds"]["150.0"]["vs_baseline"] == "better"
    assert summary["quick"]["seconds_to_fcd"]["40.0"]["reached"] == 3
    assert summary["quick-before"]["seconds_to_fcd"]["40.0"]["reached"] == 0
    assert summary["quick"]["fcd_at_end"]["last"]["mean"] == 30.0
    assert "| quick |" in ttq.table(summary)
    assert ttq.strict_json({"a": [math.inf, 1.0]}) == {"a": ["inf", 1.0]}


def test_a_threshold_that_some_seeds_reached_is_shown_with_its_count_and_never_as_minus_infinity():
    one = ttq.interval([412.0, None, None])
    assert ttq.verdict(one, ttq.interval([100.0, 110.0, 120.0])) == "same", "one seed bounds nothing"
    assert ttq.shown(one) == "412 (1/3 seeds)"
    two = ttq.interval([400.0, 410.0, None])
    assert ttq.shown(two) == f">= {two['low']:.0f} (2/3 seeds)" and math.isfinite(two["low"])
