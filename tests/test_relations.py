"""clinical_ner_crf/relations.py: candidate pairs and their window, the recall ceiling, the marked input, the nearest-drug rule, medication records."""

from clinical_ner_crf.relations import (
    Mention, candidate_inputs, candidate_pairs, candidate_recall, fit_to_length, marked_text, medication_records,
    nearest_drug_rule,
)
from test_run_re import MENTIONS, NOTE


def test_candidates_are_same_sentence_pairs_and_reason_ade_reach_one_sentence():
    pairs = {(MENTIONS[c.attribute].id, MENTIONS[c.drug].id, c.type, c.sentence_distance)
             for c in candidate_pairs(NOTE, MENTIONS)}
    # Sentence 1: 5 attributes x 2 drug mentions; sentence 2: the ADE with its own drug (distance 0), the two
    # drugs of sentence 1 (distance 1) and Tylenol on the next line (distance 1).
    same_sentence = {(a, d) for a in ("T2", "T3", "T4", "T6", "T7") for d in ("T1", "T5")}
    assert {(a, d) for a, d, _, distance in pairs if distance == 0 and a != "T9"} == same_sentence
    assert {(a, d, distance) for a, d, _, distance in pairs if a == "T9"} == {
        ("T9", "T8", 0), ("T9", "T1", 1), ("T9", "T5", 1), ("T9", "T10", 1)}
    assert len(pairs) == 14
    assert {t for a, _, t, _ in pairs if a == "T2"} == {"Strength-Drug"}
    assert len(candidate_pairs(NOTE, MENTIONS, sentence_window=0)) == 11


def test_candidate_recall_counts_what_the_window_cannot_reach():
    gold = [("Strength-Drug", "T2", "T1"), ("ADE-Drug", "T9", "T8"), ("ADE-Drug", "T9", "T10"),
            ("Strength-Drug", "T6", "T10")]  # the last one spans two sentences: no Strength candidate does
    counts = candidate_recall([(NOTE, MENTIONS, gold)])
    assert counts == {"Strength-Drug": {"gold": 2, "reached": 1}, "ADE-Drug": {"gold": 2, "reached": 2}}
    assert candidate_recall([(NOTE, MENTIONS, gold)], sentence_window=0)["ADE-Drug"] == {"gold": 2, "reached": 1}


def test_marked_text_wraps_both_arguments_and_keeps_the_rest():
    marked = marked_text(NOTE, MENTIONS[1], MENTIONS[0], (0, 51))
    assert marked == "[Drug] Metoprolol [/Drug] [Strength] 25 mg [/Strength] PO BID and lisinopril 10 mg daily."
    candidates, texts = candidate_inputs(NOTE, MENTIONS)
    ade_to_tylenol = next(t for c, t in zip(candidates, texts) if MENTIONS[c.drug].id == "T10")
    assert ade_to_tylenol.startswith("Stopped lisinopril for a [ADE] rash [/ADE].") and \
        ade_to_tylenol.endswith("[Drug] Tylenol [/Drug].")  # the two sentences of the pair, nothing more


def test_nearest_drug_rule_takes_the_preceding_drug_in_the_sentence():
    chosen = {MENTIONS[c.attribute].id: MENTIONS[c.drug].id for c in nearest_drug_rule(NOTE, MENTIONS)}
    assert chosen == {"T2": "T1", "T3": "T1", "T4": "T1", "T6": "T5", "T7": "T5", "T9": "T8"}
    # An attribute before every drug of its sentence takes the next one.
    note = "25 mg of aspirin."
    mentions = [Mention("Strength", 0, 5, "T1"), Mention("Drug", 9, 16, "T2")]
    assert [(c.attribute, c.drug) for c in nearest_drug_rule(note, mentions)] == [(0, 1)]


def test_medication_records_list_every_drug_with_its_attributes():
    links = [(c, 0.9) for c in nearest_drug_rule(NOTE, MENTIONS)]
    records = medication_records("n1", NOTE, MENTIONS, links, {0: 0.5})
    assert [r["id"] for r in records] == ["T1", "T5", "T8", "T10"], "every drug, in note order, linked or not"
    assert records[0]["drug"] == {"type": "Drug", "start": 0, "end": 10, "text": "Metoprolol", "confidence": 0.5}
    assert [(a["id"], a["relation"], a["text"]) for a in records[0]["attributes"]] == [
        ("T2", "Strength-Drug", "25 mg"), ("T3", "Route-Drug", "PO"), ("T4", "Frequency-Drug", "BID")]
    assert records[2]["attributes"][0]["relation"] == "ADE-Drug" and records[3]["attributes"] == []
    for record in records:
        for item in [record["drug"], *record["attributes"]]:
            assert NOTE[item["start"]:item["end"]] == item["text"]


def test_fit_to_length_narrows_a_long_context_around_the_markers(wordpiece_tokenizer):
    tokenizer = wordpiece_tokenizer
    filler = "Vitals stable and patient comfortable today. " * 60
    note = filler + "Aspirin 81 mg daily." + " " + filler
    mentions = [Mention("Drug", len(filler), len(filler) + 7), Mention("Strength", len(filler) + 8, len(filler) + 13)]
    text = marked_text(note, mentions[1], mentions[0], (0, len(note)))
    fitted = fit_to_length(text, tokenizer, 64)
    assert len(tokenizer(fitted)["input_ids"]) <= 64 < len(tokenizer(text)["input_ids"])
    assert all(marker in fitted for marker in ("[Drug]", "[/Drug]", "[Strength]", "[/Strength]"))
    assert fit_to_length("[Drug] a [/Drug]", tokenizer, 64) == "[Drug] a [/Drug]"
