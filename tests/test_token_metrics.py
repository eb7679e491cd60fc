"""clinical_ner_crf/token_metrics.py: the paper's evaluations of tag sequences, checked against hand counts and seqeval."""

import pytest
from hypothesis import given, settings, strategies as st

from clinical_ner_crf.metrics import summarize_counts
from clinical_ner_crf.tagging import N2C2_ENTITY_TYPES, bio_to_spans
from clinical_ner_crf.token_metrics import (
    entity_counts_by_document, entity_scores, evaluate_run, match_counts, paper_ablations, tag_confusion, tag_scores, top_confusions,
)
from conftest import assert_plain


def test_entity_starting_with_i_is_no_entity_when_strict_but_found_when_lenient():
    gold = [["B-Drug", "I-Drug", "O"]]
    pred = [["I-Drug", "I-Drug", "O"]]
    strict = entity_scores(gold, pred, "strict")
    assert strict["micro"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    lenient = entity_scores(gold, pred, "lenient")
    assert lenient["micro"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}


def test_boundary_off_by_one_word():
    gold = [["B-Strength", "I-Strength", "O", "O"]]
    pred = [["B-Strength", "I-Strength", "I-Strength", "O"]]
    assert entity_scores(gold, pred, "strict")["per_type"]["Strength"]["f1"] == 0.0
    assert entity_scores(gold, pred, "lenient")["per_type"]["Strength"]["f1"] == 1.0
    # Starting one word late: still an overlap.
    pred = [["O", "B-Strength", "O", "O"]]
    assert entity_scores(gold, pred, "strict")["micro"]["f1"] == 0.0
    assert entity_scores(gold, pred, "lenient")["micro"]["f1"] == 1.0


def test_type_mismatch_matches_neither_way():
    gold, pred = [["B-ADE", "I-ADE"]], [["B-Reason", "I-Reason"]]
    for mode in ("strict", "lenient"):
        scores = entity_scores(gold, pred, mode)
        assert scores["per_type"]["ADE"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
        assert scores["per_type"]["Reason"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        assert scores["micro"]["f1"] == 0.0


def test_entity_micro_macro_weighted_by_hand():
    gold = [["B-Drug", "O", "B-Drug", "O", "B-Strength", "I-Strength"], ["B-Drug", "O", "B-Route"]]
    pred = [["B-Drug", "O", "O", "O", "B-Strength", "I-Strength"], ["B-Drug", "B-Route", "B-Route"]]
    # Drug: 3 gold, 2 predicted, 2 right. Strength: 1/1/1. Route: 1 gold, 2 predicted, 1 right.
    for mode in ("strict", "lenient"):
        scores = entity_scores(gold, pred, mode)
        assert list(scores["per_type"]) == ["Drug", "Route", "Strength"]  # paper order
        assert scores["per_type"]["Drug"] == {"precision": 1.0, "recall": approx(2 / 3), "f1": approx(0.8), "support": 3}
        assert scores["per_type"]["Route"] == {"precision": 0.5, "recall": 1.0, "f1": approx(2 / 3), "support": 1}
        assert scores["micro"] == {"precision": approx(0.8), "recall": approx(0.8), "f1": approx(0.8), "support": 5}
        assert scores["macro"]["precision"] == approx((1 + 1 + 0.5) / 3)
        assert scores["macro"]["recall"] == approx((2 / 3 + 1 + 1) / 3)
        assert scores["macro"]["f1"] == approx((0.8 + 1 + 2 / 3) / 3)
        assert scores["weighted"]["precision"] == approx((3 * 1 + 1 + 0.5) / 5)
        assert scores["weighted"]["recall"] == approx((3 * 2 / 3 + 1 + 1) / 5)
        assert scores["weighted"]["f1"] == approx((3 * 0.8 + 1 + 2 / 3) / 5)
        assert_plain(scores)


def test_lenient_several_predictions_on_one_gold_count_once():
    gold = [["B-Strength", "I-Strength", "I-Strength", "I-Strength"]]
    pred = [["B-Strength", "I-Strength", "B-Strength", "I-Strength"]]
    lenient = entity_scores(gold, pred, "lenient")
    # n2c2 script: the second prediction on the same gold span is dropped, not a false positive.
    assert lenient["micro"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    strict = entity_scores(gold, pred, "strict")
    assert (strict["micro"]["precision"], strict["micro"]["recall"]) == (0.0, 0.0)


def test_lenient_one_prediction_over_two_golds_finds_one():
    # n2c2 script: tp counts system spans, fn = gold - tp.
    lenient = entity_scores([["B-Drug", "B-Drug"]], [["B-Drug", "I-Drug"]], "lenient")
    assert lenient["micro"]["precision"] == 1.0
    assert lenient["micro"]["recall"] == 0.5


def test_match_counts_follows_official_script_corner_case():
    gold = [("Drug", 0, 5), ("Drug", 6, 10)]
    pred = [("Drug", 0, 3), ("Drug", 2, 8)]
    # The second prediction hits an already matched gold: the script drops it, and the
    # second gold, marked matched on the way, stays unfound.
    assert match_counts(gold, pred, "lenient") == {"Drug": {"tp": 1, "fp": 0, "fn": 1}}
    assert match_counts(gold, pred, "strict") == {"Drug": {"tp": 0, "fp": 2, "fn": 2}}
    with pytest.raises(ValueError):
        match_counts(gold, pred, "partial")


def test_no_entities_anywhere_gives_zeros_not_nan():
    for mode in ("strict", "lenient"):
        scores = entity_scores([["O", "O"]], [["O", "O"]], mode)
        assert scores["per_type"] == {}
        assert scores["macro"]["f1"] == 0.0
        assert_plain(scores)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=8), min_size=1, max_size=5).flatmap(
    lambda lengths: st.tuples(*[st.tuples(st.lists(tag_strategy, min_size=n, max_size=n),
                                          st.lists(tag_strategy, min_size=n, max_size=n)) for n in lengths])))
def test_seqeval_strict_equals_exact_span_counting(pairs):
    gold, pred = [list(g) for g, _ in pairs], [list(p) for _, p in pairs]
    counts = {}
    for g, p in zip(gold, pred):
        for entity_type, row in match_counts(bio_to_spans(g, strict=True), bio_to_spans(p, strict=True)).items():
            total = counts.setdefault(entity_type, {"tp": 0, "fp": 0, "fn": 0})
            for key in total:
                total[key] += row[key]
    ours, seqeval = summarize_counts(counts), entity_scores(gold, pred, "strict")
    assert list(ours["per_type"]) == list(seqeval["per_type"])
    for name in ours["per_type"]:
        assert ours["per_type"][name] == pytest.approx(seqeval["per_type"][name])
    for average in ("micro", "macro", "weighted"):
        assert ours[average] == pytest.approx(seqeval[average])


def test_mismatched_lengths_and_bad_tags_are_errors():
    with pytest.raises(ValueError, match="sentence 1"):
        entity_scores([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="sentences"):
        tag_scores([["O"]], [])
    with pytest.raises(ValueError, match="IOB2"):
        tag_scores([["S-Drug"]], [["O"]])


def test_bio_strict_micro_macro_weighted_by_hand():
    gold = [["B-Drug", "I-Drug", "O", "O", "B-ADE"]]
    pred = [["B-Drug", "O", "O", "B-Drug", "B-Reason"]]
    scores = tag_scores(gold, pred, "bio")
    # O: 1 of 2 predicted right, 1 of 2 found; B-Drug: 1/2 P, 1/1 R; I-Drug, B-Reason, B-ADE: 0.
    assert list(scores["per_type"]) == ["O", "B-Drug", "I-Drug", "B-Reason", "B-ADE"]
    assert scores["per_type"]["O"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert scores["per_type"]["B-Drug"] == {"precision": 0.5, "recall": 1.0, "f1": approx(2 / 3), "support": 1}
    assert scores["per_type"]["B-Reason"]["support"] == 0
    assert scores["micro"] == {"precision": approx(0.4), "recall": approx(0.4), "f1": approx(0.4), "support": 5}
    assert scores["accuracy"] == approx(0.4)
    assert scores["macro"]["precision"] == approx((0.5 + 0.5) / 5)
    assert scores["macro"]["recall"] == approx((0.5 + 1.0) / 5)
    assert scores["macro"]["f1"] == approx((0.5 + 2 / 3) / 5)
    assert scores["weighted"]["precision"] == approx((2 * 0.5 + 0.5) / 5)
    assert scores["weighted"]["recall"] == approx((2 * 0.5 + 1.0) / 5)
    assert scores["weighted"]["f1"] == approx((2 * 0.5 + 2 / 3) / 5)
    assert_plain(scores)


def test_token_level_strips_prefixes():
    scores = tag_scores(ABLATION_GOLD, ABLATION_PRED, "token")
    assert list(scores["per_type"]) == ["O", "Drug", "Reason", "ADE"]
    # Drug: gold words 0,1; predicted 0,2,5. O: gold 2,5; predicted 1. Reason: gold 4; predicted 3,4.
    assert scores["per_type"]["Drug"] == {"precision": approx(1 / 3), "recall": 0.5, "f1": approx(0.4), "support": 2}
    assert scores["per_type"]["O"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert scores["per_type"]["Reason"] == {"precision": 0.5, "recall": 1.0, "f1": approx(2 / 3), "support": 1}
    assert scores["accuracy"] == approx(2 / 6)
    assert scores["macro"]["f1"] == approx((0.4 + 2 / 3) / 4)


def test_paper_ablations_by_hand():
    ablations = {name: (exclude, merge) for name, exclude, merge in paper_ablations(N2C2_ENTITY_TYPES)}
    assert list(ablations) == ["remove_O", "remove_ADE_Reason", "remove_O_ADE_Reason", "merge_ADE_into_Reason"]

    def run(name):
        exclude, merge = ablations[name]
        return tag_scores(ABLATION_GOLD, ABLATION_PRED, "token", exclude_labels=exclude, merge=merge)

    # Remove O: labels Drug, Reason, ADE; true positives 1 + 1 + 0 out of 3 + 2 + 0 predicted
    # and 2 + 1 + 1 gold words. The O word predicted Drug still counts against Drug.
    scores = run("remove_O")
    assert list(scores["per_type"]) == ["Drug", "Reason", "ADE"]
    assert scores["micro"]["precision"] == approx(2 / 5)
    assert scores["micro"]["recall"] == approx(2 / 4)
    assert scores["micro"]["f1"] == approx(2 * 0.4 * 0.5 / 0.9)
    assert scores["macro"]["precision"] == approx((1 / 3 + 1 / 2 + 0) / 3)
    assert scores["macro"]["recall"] == approx((1 / 2 + 1 + 0) / 3)
    assert scores["macro"]["f1"] == approx((0.4 + 2 / 3 + 0) / 3)
    assert scores["weighted"]["precision"] == approx((2 / 3 + 1 / 2 + 0) / 4)
    assert scores["weighted"]["recall"] == approx((1 + 1 + 0) / 4)
    assert scores["weighted"]["f1"] == approx((0.8 + 2 / 3 + 0) / 4)
    assert scores["accuracy"] == approx(2 / 6)  # over every word

    # Remove ADE and Reason: labels O, Drug; 0 + 1 right of 1 + 3 predicted, 2 + 2 gold.
    scores = run("remove_ADE_Reason")
    assert list(scores["per_type"]) == ["O", "Drug"]
    assert scores["micro"] == {"precision": approx(0.25), "recall": approx(0.25), "f1": approx(0.25), "support": 4}
    assert scores["macro"]["precision"] == approx(1 / 6)
    assert scores["macro"]["recall"] == approx(0.25)
    assert scores["macro"]["f1"] == approx(0.2)
    assert scores["weighted"]["f1"] == approx(0.2)

    # Remove O, ADE and Reason: Drug alone.
    scores = run("remove_O_ADE_Reason")
    for average in ("micro", "macro", "weighted"):
        assert scores[average] == {"precision": approx(1 / 3), "recall": 0.5, "f1": approx(0.4), "support": 2}

    # Merge ADE into Reason: gold Reason words 3,4 both predicted Reason.
    scores = run("merge_ADE_into_Reason")
    assert list(scores["per_type"]) == ["O", "Drug", "Reason"]
    assert scores["per_type"]["Reason"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert scores["micro"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 6}
    assert scores["accuracy"] == 0.5
    assert scores["macro"]["precision"] == approx((0 + 1 / 3 + 1) / 3)
    assert scores["macro"]["recall"] == approx((0 + 0.5 + 1) / 3)
    assert scores["macro"]["f1"] == approx((0 + 0.4 + 1) / 3)


def test_paper_ablations_without_ade_and_reason_only_remove_o():
    assert paper_ablations(["Gene"]) == [("remove_O", ("O",), None)]


def test_excluding_a_type_at_bio_level_drops_both_tags():
    scores = tag_scores(ABLATION_GOLD, ABLATION_PRED, "bio", exclude_labels=("ADE", "O"))
    assert list(scores["per_type"]) == ["B-Drug", "I-Drug", "B-Reason"]


def test_confusion_matrix_and_top_confusions():
    confusion = tag_confusion(ABLATION_GOLD, ABLATION_PRED, "bio")
    labels = confusion["labels"]
    assert labels == ["O", "B-Drug", "I-Drug", "B-Reason", "B-ADE"]
    cell = {(g, p): confusion["matrix"][i][j] for i, g in enumerate(labels) for j, p in enumerate(labels)}
    assert cell[("O", "B-Drug")] == 2
    assert cell[("B-Drug", "B-Drug")] == 1
    assert cell[("I-Drug", "O")] == 1
    assert cell[("B-ADE", "B-Reason")] == 1
    assert sum(map(sum, confusion["matrix"])) == 6
    top = top_confusions(confusion, k=2)
    assert top == [{"gold": "O", "pred": "B-Drug", "count": 2}, {"gold": "I-Drug", "pred": "O", "count": 1}]


def test_evaluate_run_report_shape():
    rows = [{"tokens": ["w"] * 6, "gold_tags": ABLATION_GOLD[0], "pred_tags": ABLATION_PRED[0]},
            {"tokens": ["w"], "gold_tags": None, "pred_tags": ["O"]}]
    report = evaluate_run(rows)
    assert report["num_sentences"] == 1 and report["num_unlabelled_sentences_skipped"] == 1
    assert set(report["tag"]) == {"bio", "bio_without_O", "token", "token_without_O"}
    assert list(report["ablations"]) == ["remove_O", "remove_ADE_Reason", "remove_O_ADE_Reason",
                                         "merge_ADE_into_Reason"]
    assert report["ablations"]["remove_O"]["scores"]["micro"]["precision"] == approx(2 / 5)
    assert "subword" in " ".join(report["notes"])
    assert_plain(report)
    with pytest.raises(ValueError, match="gold_tags"):
        evaluate_run([{"tokens": ["w"], "gold_tags": None, "pred_tags": ["O"]}])


def approx(value):
    return pytest.approx(value, abs=1e-9)


tag_strategy = st.sampled_from(["O", "O", "B-Drug", "I-Drug", "B-ADE", "I-ADE", "B-Reason", "I-Reason"])


# Token level: gold Drug Drug O ADE Reason O, predicted Drug O Drug Reason Reason Drug.
ABLATION_GOLD = [["B-Drug", "I-Drug", "O", "B-ADE", "B-Reason", "O"]]


ABLATION_PRED = [["B-Drug", "O", "B-Drug", "B-Reason", "B-Reason", "B-Drug"]]


def test_entity_counts_by_document_by_hand():
    """Two notes: note a has two sentences (a Drug found; a Drug found and a Reason missed), note b one sentence (a
    Drug predicted as Reason, a stray I- tag that seqeval's strict mode starts no entity with, conlleval's lenient
    one does). Counted by hand below; the notes' counts sum to the run's micro counts."""
    rows = [
        {"document_id": "a", "gold_tags": ["B-Drug", "O"], "pred_tags": ["B-Drug", "O"]},
        {"document_id": "a", "gold_tags": ["B-Drug", "B-Reason"], "pred_tags": ["B-Drug", "O"]},
        {"document_id": "b", "gold_tags": ["B-Drug", "O", "O"], "pred_tags": ["B-Reason", "O", "I-Drug"]},
        {"document_id": "c", "gold_tags": None, "pred_tags": ["B-Drug"]},  # unlabelled: left out
    ]
    counts = entity_counts_by_document(rows)
    assert counts["documents"] == ["a", "b"] and counts["relations"] is None
    assert counts["entities"]["strict"] == [(2, 0, 1), (0, 1, 1)]
    assert counts["entities"]["lenient"] == [(2, 0, 1), (0, 2, 1)]
    assert counts["entities_by_type"]["strict"] == {"Drug": [(2, 0, 0), (0, 0, 1)], "Reason": [(0, 0, 1), (0, 1, 0)]}
    assert counts["entities_by_type"]["lenient"]["Drug"] == [(2, 0, 0), (0, 1, 1)]
    strict = entity_scores([row["gold_tags"] for row in rows[:3]], [row["pred_tags"] for row in rows[:3]])["micro"]
    assert strict["f1"] == approx(2 * 2 / (2 * 2 + 1 + 2))
