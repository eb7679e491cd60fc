"""clinical_ner_crf/tagging.py: the IOB2 scheme in the paper's order, spans <-> tags, words as BERT's pre-tokenizer finds them, sentences."""

from clinical_ner_crf import tagging
from clinical_ner_crf.documents import BratEntity
from clinical_ner_crf.tagging import N2C2_LABELS, bio_to_char_spans, split_sentences, tokenize_words
from conftest import command
from test_prepare_n2c2 import SUMMARY

p = command("prepare_n2c2")


def test_n2c2_labels_follow_the_paper_order():
    assert len(N2C2_LABELS) == 19
    assert N2C2_LABELS[:5] == ["O", "B-Drug", "I-Drug", "B-Reason", "I-Reason"]
    assert N2C2_LABELS[-2:] == ["B-ADE", "I-ADE"]
    assert tagging.entity_types_of(N2C2_LABELS) == list(tagging.N2C2_ENTITY_TYPES)


def test_bio_helpers_round_trip_and_char_spans():
    tags = ["B-Drug", "I-Drug", "O", "B-Strength", "I-Strength", "B-Route"]
    spans = tagging.bio_to_spans(tags)
    assert spans == [("Drug", 0, 2), ("Strength", 3, 5), ("Route", 5, 6)]
    assert tagging.spans_to_bio(6, spans) == tags
    assert tagging.bio_to_spans(["I-Drug", "I-Drug"], strict=True) == []
    assert tagging.bio_to_spans(["I-Drug", "I-Drug"], strict=False) == [("Drug", 0, 2)]
    assert bio_to_char_spans(tags, [0, 6, 10, 12, 15, 18], [5, 9, 11, 14, 17, 20]) == [
        ("Drug", 0, 9), ("Strength", 12, 17), ("Route", 18, 20)]


def test_tokenize_words_offsets_and_punctuation():
    text = "Tylenol 650mg p.o. q6h (PRN), BP 120/80."
    words = tokenize_words(text)
    assert [w for w, _, _ in words] == ["Tylenol", "650mg", "p", ".", "o", ".", "q6h", "(", "PRN", ")", ",", "BP",
                                        "120", "/", "80", "."]
    assert all(text[s:e] == w for w, s, e in words)
    assert tokenize_words(text, 8, 13) == [("650mg", 8, 13)]


def test_words_are_the_words_a_fast_bert_tokenizer_finds_in_raw_text():
    """The pipeline tokenizes raw text: its words (word_ids + offsets) must be ours, offsets included."""
    from conftest import build_wordpiece_tokenizer

    tokenizer = build_wordpiece_tokenizer()
    text = ("Metoprolol 25mg PO BID; K-Dur 20 mEq x1. Café-au-lait, naïve: 1.5 mg/kg (q8h)!\r\n"
            "T 38.2°C, SpO2 94%\t±2 — pt_id #42 $5 “quoted” x\u00a0y")
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans: dict[int, list[int]] = {}
    for word, (start, end) in zip(encoding.word_ids(), encoding["offset_mapping"]):
        spans.setdefault(word, [start, end])[1] = end
    assert [tuple(span) for span in spans.values()] == [(s, e) for _, s, e in tokenize_words(text)]


def test_split_sentences_discharge_summary_layout():
    sentences = [SUMMARY[s:e] for s, e in split_sentences(SUMMARY)]
    assert sentences == [
        "Discharge Medications:",
        "1. Metoprolol tartrate 25 mg tablet PO BID",
        "2. Aspirin 81 mg PO daily",
        "Vitals: T 98.6 BP 120/80 HR 72",
        "Physical Exam:",
        "Lungs: clear.",
        "Brief Hospital Course:",
        "Patient was started on lisinopril 10 mg p.o. b.i.d. for\nhypertension and\ntolerated it well.",
        "Seen by Dr. Smith on day 3.",
        "He developed a rash after\nvancomycin.",
        "Creatinine was 1.5.",
        "Follow up in 2 weeks.",
        "# AKI: resolved.",
    ]


def test_split_sentences_never_cuts_an_entity_and_trims():
    text = "  Take aspirin daily.\nHe felt better.\r\n\r\nDone.  \n"
    assert [text[s:e] for s, e in split_sentences(text)] == ["Take aspirin daily.", "He felt better.", "Done."]
    across = (text.index("daily"), text.index("He") + 2)
    assert [text[s:e] for s, e in split_sentences(text, [across])] == [
        "Take aspirin daily.\nHe felt better.", "Done."]
    entity = BratEntity("T1", "Reason", ((text.index("daily"), text.index("daily") + 5), (text.index("He"), text.index("He") + 2)), "daily He", 1)
    assert len(split_sentences(text, [entity])) == 2
    assert split_sentences("   \n\t ") == []
