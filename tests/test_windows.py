"""Subword alignment and sentence windows of run_ner_crf.py: no word is ever dropped."""

import random

import pytest

from clinical_ner_crf.windows import encode_word_windows, merge_window_predictions, predict_notes, word_windows
from test_annotate_notes import constant_crf


@pytest.mark.parametrize("seed", range(30))
def test_word_windows_cover_every_word_within_budget(seed):
    rng = random.Random(seed)
    counts = [rng.randint(1, 4) for _ in range(rng.randint(1, 80))]
    budget, stride = rng.randint(4, 20), rng.randint(0, 6)
    windows = word_windows(counts, budget, stride)
    covered = set()
    for index, (start, end) in enumerate(windows):
        assert start < end
        assert sum(counts[start:end]) <= budget
        covered.update(range(start, end))
        if index:
            previous_start, previous_end = windows[index - 1]
            assert start > previous_start, "windows must move forward"
            assert start <= previous_end, "no gap between windows"
            assert sum(counts[start:previous_end]) <= stride, "overlap is at most `stride` subwords"
    assert covered == set(range(len(counts)))
    assert windows[-1][1] == len(counts)


def test_word_longer_than_budget_gets_its_own_window():
    assert word_windows([1, 9, 1], budget=4, stride=2) == [(0, 1), (1, 2), (2, 3)]
    assert word_windows([], budget=4, stride=2) == []


def test_short_sentence_is_one_window():
    assert word_windows([1, 2, 1], budget=10, stride=3) == [(0, 3)]


def test_first_subword_labels_and_label_all_tokens(wordpiece_tokenizer):
    words = ["Metoprolol", "25mg", "PO", "BID"]
    # labels: O=0, B-Drug=1, I-Drug=2, B-Strength=3, I-Strength=4
    tags = [1, 3, 0, 0]
    b_to_i = [0, 2, 2, 4, 4]
    rows = encode_word_windows([words], wordpiece_tokenizer, 64, 8, [tags])
    assert len(rows["input_ids"]) == 1
    word_index, labels, mask = rows["word_index"][0], rows["labels"][0], rows["label_mask"][0]
    # Exactly one labelled position per word, at its first subword.
    first_positions = [word_index.index(w) for w in range(len(words))]
    assert [labels[p] for p in first_positions] == tags
    assert sum(mask) == len(words)
    assert all(labels[p] == -100 for p in range(len(labels)) if p not in first_positions)

    rows = encode_word_windows([words], wordpiece_tokenizer, 64, 8, [tags], label_all_tokens=True, b_to_i=b_to_i)
    word_index, labels = rows["word_index"][0], rows["labels"][0]
    strength_positions = [p for p, w in enumerate(word_index) if w == 1]
    assert len(strength_positions) > 1, "the test needs '25mg' to split into several subwords"
    assert labels[strength_positions[0]] == 3 and all(labels[p] == 4 for p in strength_positions[1:])
    assert all(labels[p] == -100 for p, w in enumerate(word_index) if w < 0)


def test_long_sentence_is_windowed_and_merges_back(wordpiece_tokenizer):
    words = ["aspirin", "81", "mg", "PO", "daily"] * 40
    tags = [1, 3, 4, 0, 0] * 40
    rows = encode_word_windows([words, ["rash"]], wordpiece_tokenizer, 32, 8, [tags, [0]])
    assert max(len(ids) for ids in rows["input_ids"]) <= 32
    windows_of_first = [i for i, s in enumerate(rows["sentence_index"]) if s == 0]
    assert len(windows_of_first) > 1
    # Echo the gold labels back as "predictions": merging must reproduce every word's tag.
    position_tags = [[max(label, 0) for label in labels] for labels in rows["labels"]]
    position_confidences = [[0.5] * len(labels) for labels in rows["labels"]]
    merged = merge_window_predictions(rows, position_tags, position_confidences, [len(words), 1])
    assert merged[0][0] == tags
    assert merged[1][0] == [0]


def test_merge_prefers_the_window_with_most_context():
    # One sentence of 5 words in two windows overlapping on words 2-3.
    rows = {
        "sentence_index": [0, 0],
        "window_start": [0, 2],
        "window_end": [4, 5],
        "word_index": [[-1, 0, 1, 2, 3, -1], [-1, 2, 3, 4, -1]],
    }
    tags = [[0, 1, 1, 1, 1, 0], [0, 2, 2, 2, 0]]
    confidences = [[0.0, 0.1, 0.2, 0.3, 0.4, 0.0], [0.0, 0.6, 0.7, 0.8, 0.0]]
    merged_tags, merged_confidences = merge_window_predictions(rows, tags, confidences, [5])[0]
    # Word 2 is 1 word from the edge of window 1 but at the edge of window 2; word 3 is at the
    # edge of window 1 and 1 word from the edge of window 2.
    assert merged_tags == [1, 1, 1, 2, 2]
    assert merged_confidences == pytest.approx([0.1, 0.2, 0.3, 0.7, 0.8])


def test_a_word_the_tokenizer_drops_still_gets_a_position(wordpiece_tokenizer):
    words = ["aspirin", "\u200b", "daily"]  # a zero-width space normalises to nothing
    assert wordpiece_tokenizer(["\u200b"], is_split_into_words=True, add_special_tokens=False)["input_ids"] == []
    rows = encode_word_windows([words], wordpiece_tokenizer, 32, 8, [[1, 0, 0]])
    assert sorted(set(rows["word_index"][0]) - {-1}) == [0, 1, 2]
    merged = merge_window_predictions(rows, [[max(x, 0) for x in rows["labels"][0]]], [[1.0] * 5], [3])
    assert merged[0][0] == [1, 0, 0]


def test_entity_longer_than_a_window_is_merged_whole(wordpiece_tokenizer):
    model = constant_crf()
    sentence = " ".join(["aspirin", "81", "mg", "PO", "daily"] * 60)
    text = f"{sentence}\n\nHeparin"
    notes = predict_notes(model, wordpiece_tokenizer, {"doc": text}, max_seq_length=24, stride=6, batch_size=7)
    note = notes["doc"]
    assert note.sentences[0].num_windows > 10
    # The CRF path is one Dose entity per sentence; windows hand over inside it without a break.
    assert [(e.type, e.start, e.end) for e in note.entities] == [("Dose", 0, len(sentence)),
                                                                ("Dose", len(text) - 7, len(text))]
    assert note.sentences[0].pred_tags == ["B-Dose"] + ["I-Dose"] * (len(note.sentences[0].tokens) - 1)
    # Windows or not, the words are tagged the same.
    whole = predict_notes(model, wordpiece_tokenizer, {"doc": "aspirin 81 mg PO daily"})["doc"]
    assert whole.entities[0].text == "aspirin 81 mg PO daily"
