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
3. the pieces ranked by how often they occur (ties by the piece itself), after a base alphabet in both
   positions: every character of ``BASE_ALPHABET`` (printable ASCII, clinical symbols such as ``µ ° ±``,
   accented letters) whatever the training text holds, then every other character of the corpus, so that
   no word of the corpus, and no word of those characters elsewhere ("5µg", "37°C"), becomes ``[UNK]``;
   cut to the requested size.

The result is a ``BertTokenizerFast`` (BERT normalizer, pre-tokenizer and WordPiece model) whose pieces
and ids depend only on the words, the size, ``min_frequency`` and ``lowercase``. ``vocabulary_report``
gives what the docs compare: pieces per word and the unknown-token rate on held-out words.

A vocabulary learned from notes holds their words, so the tokenizer carries that fact in its own files:
``tokenizer_config.json`` gets ``"vocabulary_from_corpus": true`` (``CORPUS_VOCABULARY_MARK``) and a
short ``"vocabulary_source"`` (what built it, counts only), kept by every ``save_pretrained``, checkpoint,
copy and ONNX export; ``hub_upload.check_vocabulary_upload`` reads it before any upload.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CONTINUATION = "##"
PAPER_VOCABULARY_SIZE = 28_996  # distilbert-base-cased (and bert-base-cased)

# The base alphabet of every learned vocabulary: each character is a word-start piece and a ``##`` continuation
# piece whatever the training text holds, so a note's "5µg", "37°C", "±2" or "naïve" is pieces, not [UNK].
# BERT's pre-tokenizer makes each punctuation character (ASCII and Unicode P*) a word of its own, so those need
# the word-start piece; symbols and letters stay inside words (docs/architecture.md, "Word tokens").
PRINTABLE_ASCII = "".join(chr(code) for code in range(0x21, 0x7F))  # the 94 printable ASCII characters but space
CLINICAL_SYMBOLS = (
    "µμ"          # micro sign and Greek mu: 5µg, 10 μmol
    "°"           # degrees: 37°C, 90°
    "±×÷≤≥≈"      # arithmetic and comparison: ±2, 3×/day, ≤5, ≈10
    "½¼¾²³‰"      # fractions, powers and per mille: ½ tab, mm², 5‰
    "€£"          # currencies (prices in notes)
    "•·→↑↓"       # bullets and arrows: • item, A→B, ↑ creatinine
    "–—‘’“”…"     # typographic dashes, quotes and ellipsis (pasted text)
    "αβγΔ"        # Greek letters of biomedicine: α-blocker, β-agonist, IFN-γ, Δ change
    "®™"          # brand marks after drug names
)
ACCENTED_LETTERS = "àâäçéèêëïîôöüñ"  # eponyms and loanwords: Ménière, Sjögren, naïve, Guillain-Barré
BASE_ALPHABET = PRINTABLE_ASCII + CLINICAL_SYMBOLS + ACCENTED_LETTERS

# The mark a learned vocabulary carries in its tokenizer_config.json (an extra key that transformers keeps through
# from_pretrained -> save_pretrained), and the short description beside it (no corpus text).
CORPUS_VOCABULARY_MARK = "vocabulary_from_corpus"
VOCABULARY_SOURCE_KEY = "vocabulary_source"


def _normalizer(lowercase: bool):
    return normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)


def base_alphabet(lowercase: bool = False) -> list[str]:
    """``BASE_ALPHABET`` as the normalizer leaves it (lower-cased and without accents when ``lowercase``), sorted."""
    normalizer = _normalizer(lowercase)
    return sorted({character for base in BASE_ALPHABET for character in normalizer.normalize_str(base)
                   if not character.isspace()})


def mark_corpus_vocabulary(tokenizer, source: str):
    """Mark ``tokenizer`` as holding a vocabulary learned from a corpus: ``CORPUS_VOCABULARY_MARK`` and
    ``VOCABULARY_SOURCE_KEY`` in the tokenizer's init kwargs, which ``save_pretrained`` writes into
    tokenizer_config.json and ``from_pretrained`` reads back (so checkpoints, copies and exports keep it)."""
    tokenizer.init_kwargs[CORPUS_VOCABULARY_MARK] = True
    tokenizer.init_kwargs[VOCABULARY_SOURCE_KEY] = source
    return tokenizer


def _reiterable(values) -> bool:
    """Whether ``values`` gives a fresh iteration each time (a list, or an object whose ``__iter__`` starts over), as
    opposed to a one-shot iterator or generator."""
    return iter(values) is not values


def sentence_batches(word_sequences: Iterable[Sequence[str]], max_sentences: int = 1000, max_words: int = 100_000):
    """Non-empty sentences (as lists) in batches of at most ``max_sentences`` sentences and about ``max_words``
    words (a longer sentence is a batch alone): bounded memory whatever the sentences' lengths."""
    batch: list[list[str]] = []
    words = 0
    for sentence in word_sequences:
        if not len(sentence):
            continue
        if batch and (len(batch) >= max_sentences or words + len(sentence) > max_words):
            yield batch
            batch, words = [], 0
        batch.append(list(sentence))
        words += len(sentence)
    if batch:
        yield batch


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
    from_corpus: bool = True,
):
    """A cased (or lower-cased) WordPiece tokenizer of at most ``vocab_size`` pieces, learned from the words.

    The vocabulary reached is smaller when the corpus has fewer distinct pieces than asked for
    (``len(tokenizer)`` says how many). Deterministic: the same words give the same pieces and ids.
    It holds the base alphabet (``BASE_ALPHABET``) whatever the words, so ``vocab_size`` must leave room for it.
    ``from_corpus`` (the default) marks the tokenizer as learned from a corpus (``mark_corpus_vocabulary``);
    only words that are no corpus's (a test's fixture text) may pass False.
    """
    alphabet = base_alphabet(lowercase)
    smallest = len(SPECIAL_TOKENS) + 2 * len(alphabet)
    if vocab_size < smallest:
        raise ValueError(f"vocab_size {vocab_size} leaves no room for the base alphabet: at least {smallest} "
                         f"({len(SPECIAL_TOKENS)} special tokens and {len(alphabet)} characters, each at a word start "
                         "and inside a word)")
    # Read twice below: an iterable that can be read again (pretrain_mlm.py's text, streamed from the files at each
    # pass) is used as it is, never held whole; a one-shot iterator is kept in a list.
    sentences = word_sequences if _reiterable(word_sequences) else [list(words) for words in word_sequences]
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

    # 3. The base alphabet, then every other character of the corpus, in both positions (no word of the corpus, and
    # no word of those characters, is unknown), then the most frequent pieces.
    vocab = list(SPECIAL_TOKENS)
    for character in alphabet + sorted(characters - set(alphabet)):
        vocab += [character, CONTINUATION + character]
    seen = set(vocab)
    for piece, _ in sorted(piece_counts.items(), key=lambda item: (-item[1], item[0])):
        if len(vocab) >= vocab_size:
            break
        if piece not in seen:
            vocab.append(piece)
            seen.add(piece)
    tokenizer = wordpiece_tokenizer(vocab[:max(vocab_size, len(SPECIAL_TOKENS))], lowercase, model_max_length)
    if from_corpus:
        mark_corpus_vocabulary(tokenizer, f"WordPiece learned by subwords.py from {len(counts):,} distinct words of "
                                          f"the training text ({len(tokenizer):,} entries)")
    return tokenizer


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
    words = pieces = unknown = 0
    for batch in sentence_batches(word_sequences):  # streamed: the same counts as all at once, in bounded memory
        encoding = tokenizer(batch, is_split_into_words=True, add_special_tokens=False)
        for row, ids in enumerate(encoding["input_ids"]):
            word_ids = encoding.word_ids(row)
            words += len(set(w for w in word_ids if w is not None))
            pieces += len(ids)
            unknown += sum(1 for t, w in zip(ids, word_ids) if t == tokenizer.unk_token_id
                           and (w is not None))
    return vocabulary_figures(len(tokenizer), words, pieces, unknown)


def vocabulary_figures(vocabulary_size: int, words: int, pieces: int, unknown: int) -> dict[str, float | int]:
    """:func:`vocabulary_report`'s figures from its counts (pretrain_mlm.py counts them while it packs its blocks,
    which tokenize the same words: one pass over a large text instead of two)."""
    return {"vocabulary_size": vocabulary_size, "words": words,
            "pieces_per_word": round(pieces / words, 4) if words else 0.0,
            "unknown_rate": round(unknown / words, 6) if words else 0.0}
