"""The paired bootstrap of the comparison benchmarks: seeds that share a test set share its resample."""

from __future__ import annotations

import random

import pytest

from gnnlm.tasks.relation_classification.scorer import paired_bootstrap_macro_f1
from gnnlm.train.variants import paired_bootstrap


def outcomes(n: int, p: float, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [int(rng.random() < p) for _ in range(n)]


def test_repeating_a_seed_on_the_same_test_set_does_not_narrow_the_interval():
    """Three seeds with identical outcomes on one test set carry no more evidence than one: the
    interval must keep its width (resampling each seed on its own would shrink it by ~sqrt(3))."""
    a, b = outcomes(400, 0.6, 1), outcomes(400, 0.5, 2)
    one = paired_bootstrap([a], [b], rounds=2000)
    three = paired_bootstrap([a] * 3, [b] * 3, rounds=2000)
    assert three["mean"] == pytest.approx(one["mean"])
    assert three["high"] - three["low"] == pytest.approx(one["high"] - one["low"], rel=1e-6)


def test_seeds_on_different_test_sets_are_resampled_on_their_own():
    """Different example counts are different test sets: averaging them does narrow the interval."""
    a, b = outcomes(400, 0.6, 1), outcomes(400, 0.5, 2)
    one = paired_bootstrap([a], [b], rounds=4000)
    sizes = [400, 401, 402]
    many = paired_bootstrap([outcomes(n, 0.6, n) for n in sizes],
                            [outcomes(n, 0.5, n + 7) for n in sizes], rounds=4000)  # fmt: skip
    assert (many["high"] - many["low"]) < 0.75 * (one["high"] - one["low"])


def test_the_macro_f1_bootstrap_shares_the_resample_across_seeds_too():
    rng = random.Random(0)
    gold = [rng.randrange(9) for _ in range(300)]
    good = [g if rng.random() < 0.7 else rng.randrange(9) for g in gold]
    bad = [g if rng.random() < 0.5 else rng.randrange(9) for g in gold]
    one = paired_bootstrap_macro_f1([gold], [good], [bad], rounds=600)
    three = paired_bootstrap_macro_f1([gold] * 3, [good] * 3, [bad] * 3, rounds=600)
    assert three["mean"] == pytest.approx(one["mean"])
    assert three["high"] - three["low"] == pytest.approx(one["high"] - one["low"], rel=1e-5)
