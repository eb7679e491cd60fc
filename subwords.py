"""A subword vocabulary learned from the training words only: a real WordPiece, the same in every process.

Models trained from scratch (TransformerCRF, and the encoders ``pretrain_mlm.py`` pre-trains) need a
vocabulary of their own. The paper's ``distilbert-base-cased`` architecture comes with a cased WordPiece
vocabulary of 28,996 pieces; this module builds one of that kind from a corpus:

1. byte-pair merges learned by ``tokenizers``' ``BpeTrainer`` over the words (BERT's pre-tokenizer),
   without a continuation prefix: that trainer gives the same merges in every process, while the
   ``WordPieceTrainer`` (and the BPE trainer with a ``##`` prefix) break frequency ties in hash order,
   so their vocabularies differ from one process to the next (upstream huggingface/tokenizers #1794);
2. every word of the corpus segmented with those merges; a piece seen at the start of a word enters
   the vocabulary as itself, a piece seen inside a word as ``##piece`` (WordPiece's continuation mark,
   which lets a model tell word starts from continuations: ``CRFForTokenClassification.set_subword_kinds``);
3. the pieces ranked by how often they occur (ties by the piece itself), every character in both
   positions kept so that no word of the corpus becomes ``[UNK]``, cut to the requested size.

The result is a ``BertTokenizerFast`` (BERT normalizer, pre-tokenizer and WordPiece model) whose pieces
and ids depend only on the words, the size, ``min_frequency`` and ``lowercase``. ``vocabulary_report``
gives what the docs compare: pieces per word and the unknown-token rate on held-out words.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CONTINUATION = "##"
PAPER_VOCABULARY_SIZE = 28_996  # distilbert-base-cased (and bert-base-cased)


def _normalizer(lowercase: bool):
    return normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)


def word_counts(word_sequences: Iterable[Sequence[str]], lowercase: bool = False) -> Counter:
    """How often each pre-tokenized, normalized word occurs."""
    normalizer, pre_tokenizer = _normalizer(lowercase), pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter()
    for words in word_sequences:
        for word in words:
            counts.update(piece for piece, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(word)))
    return counts


def train_subword_tokenizer(
    word_sequences: Iterable[Sequence[str]],
    vocab_size: int = PAPER_VOCABULARY_SIZE,
    min_frequency: int = 2,
    lowercase: bool = False,
    model_max_length: int = 512,
):
    """A cased (or lower-cased) WordPiece tokenizer of at most ``vocab_size`` pieces, learned from the words.

    The vocabulary reached is smaller when the corpus has fewer distinct pieces than asked for
    (``len(tokenizer)`` says how many). Deterministic: the same words give the same pieces and ids.
    """
    if vocab_size < len(SPECIAL_TOKENS) + 2:
        raise ValueError(f"vocab_size {vocab_size} leaves no room for pieces")
    sentences = [list(words) for words in word_sequences]
    counts = word_counts(sentences, lowercase)
    if not counts:
        raise ValueError("no words to learn a vocabulary from")

    # 1. Deterministic merges (no continuation prefix: see the module docstring).
    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.normalizer = _normalizer(lowercase)
    bpe.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    bpe.train_from_iterator((" ".join(words) for words in sentences),
                            trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                                special_tokens=SPECIAL_TOKENS, show_progress=False))
    bpe_merges = bpe.model

    # 2. Pieces by position and frequency, from the merges applied to every word.
    piece_counts: Counter = Counter()
    characters: set[str] = set()
    for word, count in counts.items():
        characters.update(word)
        pieces = [token.value for token in bpe_merges.tokenize(word)]
        for index, piece in enumerate(pieces):
            piece_counts[piece if index == 0 else CONTINUATION + piece] += count

    # 3. Every character in both positions (no word of the corpus is unknown), then the most frequent pieces.
    vocab = list(SPECIAL_TOKENS)
    for character in sorted(characters):
        vocab += [character, CONTINUATION + character]
    seen = set(vocab)
    for piece, _ in sorted(piece_counts.items(), key=lambda item: (-item[1], item[0])):
        if len(vocab) >= vocab_size:
            break
        if piece not in seen:
            vocab.append(piece)
            seen.add(piece)
    return wordpiece_tokenizer(vocab[:max(vocab_size, len(SPECIAL_TOKENS))], lowercase, model_max_length)


def wordpiece_tokenizer(vocab: Sequence[str], lowercase: bool = False, model_max_length: int = 512):
    """A BERT-style fast tokenizer over a WordPiece vocabulary (ids in list order)."""
    from transformers import BertTokenizerFast

    backend = Tokenizer(models.WordPiece(vocab={token: i for i, token in enumerate(vocab)}, unk_token="[UNK]",
                                         continuing_subword_prefix=CONTINUATION, max_input_chars_per_word=100))
    backend.normalizer = _normalizer(lowercase)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix=CONTINUATION)
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))],
    )
    return BertTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                             sep_token="[SEP]", mask_token="[MASK]", do_lower_case=lowercase,
                             model_max_length=model_max_length)


def vocabulary_report(tokenizer, word_sequences: Iterable[Sequence[str]]) -> dict[str, float | int]:
    """Pieces per word and the share of words that become the unknown token, over ``word_sequences``."""
    sentences = [list(words) for words in word_sequences if len(words)]
    words = pieces = unknown = 0
    for start in range(0, len(sentences), 1000):
        encoding = tokenizer(sentences[start:start + 1000], is_split_into_words=True, add_special_tokens=False)
        for row, ids in enumerate(encoding["input_ids"]):
            word_ids = encoding.word_ids(row)
            words += len(set(w for w in word_ids if w is not None))
            pieces += len(ids)
            unknown += sum(1 for t, w in zip(ids, word_ids) if t == tokenizer.unk_token_id
                           and (w is not None))
    return {"vocabulary_size": len(tokenizer), "words": words,
            "pieces_per_word": round(pieces / words, 4) if words else 0.0,
            "unknown_rate": round(unknown / words, 6) if words else 0.0}
