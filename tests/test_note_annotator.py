"""clinical_ner_crf/note_annotator.py: NoteAnnotator on notes of any length, CRF marginals and softmax confidences, min_confidence, byte-level BPE tokenizers."""

import statistics
import time

import pytest
import torch

from clinical_ner_crf.brat import read_brat_document, write_brat_ann
from clinical_ner_crf.note_annotator import NoteAnnotator, load_model_and_tokenizer
from clinical_ner_crf.synthetic_n2c2 import generate_notes
from clinical_ner_crf.tagging import split_sentences, tokenize_words
from clinical_ner_crf.windows import max_input_length, needs_prefix_space, predict_notes
from conftest import tiny_encoder_config
from modeling_crf import CRFForTokenClassification, CRFTokenClassificationConfig
from test_annotate_notes import crf, crf_dir  # noqa: F401 (fixtures)
from test_annotate_notes import write_txt


def test_note_of_50k_characters_with_a_giant_sentence(crf, tmp_path):
    model, tokenizer = crf
    giant = " ".join(["aspirin 81 mg PO daily and metoprolol 25 mg tablet by mouth twice a day for hypertension"] * 300)
    long_word = "metoprolol" * 40  # one word longer than a whole window
    text = "\n\n".join([note.text for note in generate_notes(5, seed=3, split="long")] + [giant, long_word])
    text = (text + "\n") * max(1, -(-50_000 // len(text)))
    assert len(text) >= 50_000
    giant_spans = [span for span in split_sentences(text) if span[1] - span[0] >= len(giant)]
    assert giant_spans, "the giant line must stay one sentence"

    started = time.perf_counter()
    note = predict_notes(model, tokenizer, {"long": text}, max_seq_length=64, stride=16, batch_size=64)["long"]
    seconds = time.perf_counter() - started
    print(f"\n50k-character note ({len(text)} characters, {note.num_windows} windows): {seconds:.2f} s")

    # Every word of the note got exactly one prediction, in order.
    words = [(s, e) for sentence in note.sentences for s, e in zip(sentence.token_starts, sentence.token_ends)]
    assert words == [(s, e) for _, s, e in tokenize_words(text)]
    assert max(sentence.num_windows for sentence in note.sentences) > 50
    entities = note.entities
    assert len(entities) > 100
    for previous, entity in zip(entities, entities[1:]):
        assert previous.end <= entity.start
    assert all(entity.text == text[entity.start:entity.end] for entity in entities)
    assert all(0.0 < entity.confidence <= 1.0 for entity in entities)

    txt = write_txt(tmp_path / "long.txt", text)
    write_brat_ann(tmp_path / "long.ann", [(e.type, e.start, e.end) for e in entities], text)
    document = read_brat_document(txt, validate_text=True)
    assert [(e.type, e.start, e.end) for e in document.entities] == [(e.type, e.start, e.end) for e in entities]


def test_one_word_and_tiny_notes(crf):
    model, tokenizer = crf
    texts = {"one": "Aspirin", "dot": ".", "spaced": "\n\n   Heparin  \n", "empty": "", "blank": " \n\t "}
    result = predict_notes(model, tokenizer, texts)
    assert [s.tokens for s in result["one"].sentences] == [["Aspirin"]]
    assert [s.tokens for s in result["spaced"].sentences] == [["Heparin"]]
    assert result["empty"].sentences == [] and result["blank"].sentences == []
    for document_id, note in result.items():
        for entity in note.entities:
            assert entity.text == texts[document_id][entity.start:entity.end]


def test_crf_confidences_are_marginals_and_min_confidence_filters(crf):
    model, tokenizer = crf
    text = "She was started on lisinopril 10 mg PO daily for hypertension and developed a rash."
    note = predict_notes(model, tokenizer, {"d": text})["d"]
    sentence = note.sentences[0]
    # The same numbers straight from the model: Viterbi tags and their marginals at first subwords.
    encoding = tokenizer([sentence.tokens], is_split_into_words=True, return_tensors="pt")
    word_ids = encoding.word_ids(0)
    first = torch.tensor([[w is not None and (t == 0 or word_ids[t - 1] != w) for t, w in enumerate(word_ids)]])
    with torch.no_grad():
        outputs = model(**encoding, label_mask=first, return_marginals=True)
    tags = outputs.decoded_tags[0][first[0]]
    assert sentence.pred_tags == [model.config.id2label[int(t)] for t in tags]
    assert sentence.confidences == pytest.approx(outputs.marginals[0][first[0]].gather(1, tags[:, None])[:, 0].tolist())
    assert note.entities
    assert all(e.confidence == pytest.approx(statistics.mean(e.word_confidences)) for e in note.entities)

    texts = {f"n{i}": note.text for i, note in enumerate(generate_notes(2, seed=5, split="conf"))}
    everything = NoteAnnotator(model, tokenizer)(list(texts.values()))
    threshold = statistics.median(e.confidence for entities in everything for e in entities)
    filtered = NoteAnnotator(model, tokenizer, min_confidence=threshold)(list(texts.values()))
    assert filtered == [[e for e in entities if e.confidence >= threshold] for entities in everything]
    assert 0 < sum(map(len, filtered)) < sum(map(len, everything))


def test_linear_apt_model_gets_softmax_confidences(tmp_path, wordpiece_tokenizer):
    from transformers import AutoModelForTokenClassification

    labels = ["O", "B-Drug", "I-Drug"]
    torch.manual_seed(0)
    config = tiny_encoder_config("distilbert", num_labels=3, id2label=dict(enumerate(labels)),
                                 label2id={label: i for i, label in enumerate(labels)})
    AutoModelForTokenClassification.from_config(config).save_pretrained(tmp_path)
    wordpiece_tokenizer.save_pretrained(tmp_path)
    model, tokenizer = load_model_and_tokenizer(str(tmp_path))
    assert not NoteAnnotator(model, tokenizer).is_crf
    text = "Aspirin 81 mg PO daily, metoprolol tartrate 25 mg."
    sentence = predict_notes(model, tokenizer, {"d": text})["d"].sentences[0]
    encoding = tokenizer([sentence.tokens], is_split_into_words=True, return_tensors="pt")
    word_ids = encoding.word_ids(0)
    first = [t for t, w in enumerate(word_ids) if w is not None and (t == 0 or word_ids[t - 1] != w)]
    with torch.no_grad():
        probabilities = model(input_ids=encoding["input_ids"]).logits[0].softmax(-1)[first]
    assert sentence.confidences == pytest.approx(probabilities.max(-1).values.tolist(), abs=1e-6)
    assert sentence.pred_tags == [labels[i] for i in probabilities.argmax(-1).tolist()]


def test_byte_level_bpe_model_gets_a_prefix_space(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, RobertaTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(["Aspirin 81 mg PO daily for chest pain, heparin 5000 units SC q8h."] * 5,
                                trainers.BpeTrainer(vocab_size=350, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    RobertaTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                         unk_token="<unk>").save_pretrained(tmp_path)
    assert needs_prefix_space(AutoTokenizer.from_pretrained(tmp_path))
    torch.manual_seed(0)
    config = CRFTokenClassificationConfig(encoder_config=tiny_encoder_config("roberta", vocab_size=len(backend.get_vocab())),
                                          id2label=dict(enumerate(["O", "B-Drug", "I-Drug"])))
    CRFForTokenClassification(config).save_pretrained(tmp_path)
    model, tokenizer = load_model_and_tokenizer(str(tmp_path))
    assert tokenizer.add_prefix_space and not needs_prefix_space(tokenizer)
    assert max_input_length(model, tokenizer, 512) == 128  # 130 positions after the padding index
    text = "Aspirin 81 mg PO daily for chest pain. " * 30
    note = predict_notes(model, tokenizer, {"d": text}, max_seq_length=32, stride=8)["d"]
    assert [(s, e) for x in note.sentences for s, e in zip(x.token_starts, x.token_ends)] == \
           [(s, e) for _, s, e in tokenize_words(text)]
    assert all(entity.text == text[entity.start:entity.end] for entity in note.entities)
