"""clinical_ner_crf/significance.py: the paired bootstrap and approximate randomization over documents."""

import random

import pytest

from clinical_ner_crf.significance import approximate_randomization, compare_systems, micro_f1, paired_bootstrap


def test_micro_f1_sums_counts_over_documents_before_dividing():
    documents = [(8, 2, 0), (0, 0, 10)]  # 8 tp, 2 fp, 10 fn in all
    assert micro_f1(documents) == pytest.approx(2 * 8 / (2 * 8 + 2 + 10))
    assert micro_f1(documents, [0, 0]) == pytest.approx(2 * 16 / (2 * 16 + 4))  # a redraw may repeat a note
    assert micro_f1([(0, 3, 4)]) == 0.0


def test_a_system_better_on_every_note_has_an_interval_above_zero():
    rng = random.Random(1)
    reference = [(rng.randint(3, 6), rng.randint(1, 3), rng.randint(1, 3)) for _ in range(60)]
    better = [(tp + 1, max(fp - 1, 0), max(fn - 1, 0)) for tp, fp, fn in reference]
    result = paired_bootstrap([better], [reference], resamples=500)
    assert result["difference"] == pytest.approx(micro_f1(better) - micro_f1(reference))
    assert 0 < result["low"] <= result["difference"] <= result["high"]
    assert result["p_not_better"] == 0.0 and result["documents"] == 60


def test_a_difference_carried_by_one_note_is_not_significant():
    # Equal on 39 notes; the system wins one note by a lot: redraws without that note show no difference.
    reference = [(5, 1, 1)] * 39 + [(0, 5, 5)]
    system = [(5, 1, 1)] * 39 + [(5, 0, 0)]
    result = paired_bootstrap([system], [reference], resamples=1000)
    assert result["difference"] > 0
    assert result["low"] <= 0 < result["high"]
    assert result["p_not_better"] > 0.025


def test_runs_of_several_seeds_are_averaged_and_the_interval_is_seeded():
    reference = [(4, 1, 1)] * 30
    seeds = [[(5, 0, 1)] * 30, [(4, 1, 1)] * 30, [(3, 2, 2)] * 30]
    result = paired_bootstrap(seeds, [reference], resamples=200, seed=7)
    mean = sum(micro_f1(run) for run in seeds) / 3
    assert result["difference"] == pytest.approx(mean - micro_f1(reference))
    assert paired_bootstrap(seeds, [reference], resamples=200, seed=7) == result


@pytest.mark.parametrize("system, reference, message", [
    ([[(1, 0, 0)] * 3], [[(1, 0, 0)] * 4], "same documents"),
    ([], [[(1, 0, 0)]], "same documents"),
    ([[]], [[]], "no documents"),
])
def test_runs_over_different_notes_are_refused(system, reference, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(system, reference)


# ---------------------------------------------------------------------------
# Approximate randomization, and one comparison as a report states it
# ---------------------------------------------------------------------------


def test_approximate_randomization_by_hand_on_three_notes():
    """Three notes, the system right on each (1 tp), the reference wrong on each (1 fp, 1 fn): observed difference
    1.0. Swapping k of the notes gives F1 k/3 against (3 - k)/3, so |difference| = |2k - 3| / 3: 1 only for k = 0
    and k = 3, 2 of the 8 swappings. Exact p-value 2/8."""
    system, reference = [(1, 0, 0)] * 3, [(0, 1, 1)] * 3
    result = approximate_randomization(system, reference)
    assert result == {"difference": 1.0, "p_value": 0.25, "shuffles": 8, "exact": True, "documents": 3}
    # A difference carried by one note (the other the same for both): every swapping as large, p = 1.
    assert approximate_randomization([(2, 0, 0), (0, 0, 2)], [(0, 0, 2), (0, 0, 2)])["p_value"] == 1.0


def test_identical_systems_differ_by_nothing_with_p_one():
    rng = random.Random(3)
    documents = [(rng.randint(0, 9), rng.randint(0, 3), rng.randint(0, 3)) for _ in range(40)]  # sampled, not exact
    result = compare_systems(documents, list(documents), shuffles=2000, resamples=500)
    assert result["difference"] == 0.0 and result["ci95"] == [0.0, 0.0]
    assert result["p_value"] == 1.0 and result["p_value_exact"] is False and result["documents"] == 40


def test_a_clearly_better_system_is_significant_and_the_result_is_seeded():
    rng = random.Random(5)
    reference = [(rng.randint(3, 6), rng.randint(1, 3), rng.randint(1, 3)) for _ in range(40)]
    better = [(tp + 1, max(fp - 1, 0), max(fn - 1, 0)) for tp, fp, fn in reference]
    result = compare_systems(better, reference, shuffles=2000, resamples=500, seed=7)
    assert result["difference"] > 0 and result["ci95"][0] > 0 and result["p_value"] < 0.05
    assert compare_systems(better, reference, shuffles=2000, resamples=500, seed=7) == result
    # The other direction: the same p-value (two-sided), the difference and interval mirrored.
    mirrored = compare_systems(reference, better, shuffles=2000, resamples=500, seed=7)
    assert mirrored["p_value"] == result["p_value"] and mirrored["difference"] == -result["difference"]


def test_approximate_randomization_refuses_systems_over_different_notes():
    with pytest.raises(ValueError, match="the same documents"):
        approximate_randomization([(1, 0, 0)], [(1, 0, 0), (0, 1, 0)])
    with pytest.raises(ValueError, match="no documents"):
        approximate_randomization([], [])
