"""clinical_ner_crf/mlm_blocks.py: packed blocks hold every word in order, whole words are masked together, and the context-free loss is what it says."""

import math

import pytest
import torch

from clinical_ner_crf.mlm_blocks import (
    WholeWordMaskCollator, blocks_dataset, context_free_loss, iter_blocks, pack_blocks, padding_share, piece_entropy,
)
from clinical_ner_crf.subwords import train_subword_tokenizer, vocabulary_report
from test_pretrain_mlm import dataset, words  # noqa: F401 (fixtures)


def test_blocks_hold_every_word_in_order_and_are_nearly_full(words):
    train, _ = words
    tokenizer = train_subword_tokenizer(train, vocab_size=600)
    sentences = train[:300] + [["x" * 300]]  # a word longer than a block
    blocks = pack_blocks(sentences, tokenizer, max_seq_length=32)
    expected = [i for ids in tokenizer(sentences, is_split_into_words=True, add_special_tokens=False)["input_ids"]
                for i in ids]
    assert [i for ids in blocks["input_ids"] for i in ids[1:-1]] == expected
    for ids, word_ids in zip(blocks["input_ids"], blocks["word_ids"]):
        assert len(ids) <= 32 and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert word_ids[0] == word_ids[-1] == -1 and word_ids[1:-1] == sorted(word_ids[1:-1])
    lengths = [len(ids) for ids in blocks["input_ids"]]
    assert padding_share(lengths, batch_size=16) < 0.05


def test_context_free_loss_is_the_entropy_of_the_pieces_predicted():
    cls, sep, a, b, c = 2, 3, 10, 11, 12
    blocks = {"input_ids": [[cls, a, a, b, sep], [cls, a, c, sep]]}  # a: 3 of 5, b and c: 1 of 5 each
    expected = -(0.6 * math.log(0.6) + 2 * 0.2 * math.log(0.2))
    assert context_free_loss(blocks, [cls, sep]) == pytest.approx(expected, abs=1e-4)
    assert context_free_loss({"input_ids": [[cls, a, a, sep]]}, [cls, sep]) == 0.0  # one piece: no doubt


def test_whole_words_are_masked_together(words):
    train, _ = words
    tokenizer = train_subword_tokenizer(train, vocab_size=300)
    blocks = pack_blocks(train[:400], tokenizer, max_seq_length=64)
    features = [{"input_ids": i, "word_ids": w} for i, w in zip(blocks["input_ids"], blocks["word_ids"])][:64]
    torch.manual_seed(0)
    batch = WholeWordMaskCollator(tokenizer, 0.15)(features)
    masked = batch["labels"] != -100
    assert 0.08 < masked.sum() / batch["attention_mask"].sum() < 0.25
    for row, feature in enumerate(features):
        word_ids = torch.tensor(feature["word_ids"])
        for word in set(feature["word_ids"]) - {-1}:
            pieces = masked[row, :len(word_ids)][word_ids == word]
            assert pieces.all() or not pieces.any(), "a word is masked whole or not at all"
        assert not masked[row, 0] and batch["input_ids"][row, 0] == tokenizer.cls_token_id
    replaced = batch["input_ids"][masked] == tokenizer.mask_token_id
    assert 0.6 < replaced.float().mean() < 0.95  # 80% [MASK], the rest random or kept


def test_packing_counts_what_vocabulary_report_counts(words):
    from clinical_ner_crf.subwords import vocabulary_figures

    train, test = words
    tokenizer = train_subword_tokenizer(train[:200], vocab_size=400)
    sentences = test[:300] + [["∑∂", "x"]]  # unknown pieces too
    counts = {"words": 0, "pieces": 0, "unknown": 0}
    blocks = list(iter_blocks(sentences, tokenizer, 32, vocabulary_counts=counts))
    report = vocabulary_report(tokenizer, sentences)
    assert vocabulary_figures(len(tokenizer), **counts) == report and report["unknown_rate"] > 0
    packed = pack_blocks(sentences, tokenizer, 32)
    assert [ids for ids, _ in blocks] == packed["input_ids"] and [w for _, w in blocks] == packed["word_ids"]
    dataset, lengths, piece_counts = blocks_dataset(iter(blocks), tokenizer.all_special_ids,
                                                                 rows_per_part=7)
    assert dataset["input_ids"] == packed["input_ids"] and lengths == [len(ids) for ids in packed["input_ids"]]
    assert piece_entropy(piece_counts) == context_free_loss(packed,
                                                                                      tokenizer.all_special_ids)
