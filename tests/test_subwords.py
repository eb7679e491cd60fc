"""clinical_ner_crf/subwords.py: the base alphabet of every learned vocabulary, and the mark a learned vocabulary carries."""

import hashlib
import os
import subprocess
import sys

import pytest

from clinical_ner_crf.subwords import (
    ACCENTED_LETTERS, BASE_ALPHABET, CLINICAL_SYMBOLS, CONTINUATION, CORPUS_VOCABULARY_MARK, PRINTABLE_ASCII,
    SPECIAL_TOKENS, VOCABULARY_SOURCE_KEY, base_alphabet, train_subword_tokenizer, vocabulary_report,
)
from conftest import REPO_ROOT
from test_pretrain_mlm import dataset, words  # noqa: F401 (fixtures)

# A tiny training text with none of the characters below but letters, digits and a full stop.
TINY_TEXT = [["Patient", "was", "given", "aspirin", "81", "mg", "daily", "."],
             ["Metoprolol", "25", "mg", "tablet", "twice", "daily", "for", "hypertension", "."]] * 3
IN_WORDS = ["5µg", "10μmol", "37°C", "±2", "3×/day", "≤5", "≥10", "½", "mm²", "5‰", "€12", "£3", "A→B", "↑creatinine",
            "β-blocker", "TNF-α", "naïve", "Ménière", "Sjögren", "Guillain-Barré", "Xarelto®", "x^2", "a~b", "50$",
            "#3", "[1]", "{x}", "a&b", "2*3", "user@site", "a;b", "1–2", "“quoted”", "wait…"]


def unknown_words(tokenizer, words):
    encoding = tokenizer([words], is_split_into_words=True, add_special_tokens=False)
    return sorted({words[w] for t, w in zip(encoding["input_ids"][0], encoding.word_ids(0))
                   if t == tokenizer.unk_token_id})


@pytest.fixture(scope="module")
def tiny_vocabulary():
    return train_subword_tokenizer(TINY_TEXT, vocab_size=400, min_frequency=1)


def test_the_listed_characters_are_the_base_alphabet():
    assert len(PRINTABLE_ASCII) == 94 and " " not in PRINTABLE_ASCII and "~" in PRINTABLE_ASCII
    assert BASE_ALPHABET == PRINTABLE_ASCII + CLINICAL_SYMBOLS + ACCENTED_LETTERS
    assert len(set(BASE_ALPHABET)) == len(BASE_ALPHABET)  # no character listed twice
    for symbol in "µμ°±×÷≤≥½¼¾²³‰€£•→":
        assert symbol in CLINICAL_SYMBOLS, symbol
    assert "ï" in ACCENTED_LETTERS


def test_every_base_character_is_a_piece_at_a_word_start_and_inside_a_word(tiny_vocabulary):
    vocab = tiny_vocabulary.get_vocab()
    missing = [c for c in BASE_ALPHABET if c not in vocab or CONTINUATION + c not in vocab]
    assert not missing, missing
    # ... although the training text holds none of these.
    assert not set(CLINICAL_SYMBOLS + ACCENTED_LETTERS + ";@#[]{}&*~^$") & set("".join(sum(TINY_TEXT, [])))


def test_a_vocabulary_from_a_tiny_text_encodes_every_listed_character_without_unk(tiny_vocabulary):
    # Each character alone (ASCII punctuation is a word of its own for BERT's pre-tokenizer), and inside words.
    assert unknown_words(tiny_vocabulary, list(BASE_ALPHABET)) == []
    assert unknown_words(tiny_vocabulary, IN_WORDS) == []
    assert unknown_words(tiny_vocabulary, ["x" + c + "y" for c in BASE_ALPHABET]) == []
    assert tiny_vocabulary.tokenize("5µg") == ["5", "##µ", "##g"]
    assert tiny_vocabulary.tokenize("37°C") == ["3", "##7", "##°", "##C"]
    assert vocabulary_report(tiny_vocabulary, [IN_WORDS, list(BASE_ALPHABET)])["unknown_rate"] == 0.0
    # A character outside the alphabet and the training text is still unknown (the vocabulary is not all Unicode).
    assert unknown_words(tiny_vocabulary, ["5ʤg"]) == ["5ʤg"]


def test_a_lower_cased_vocabulary_holds_the_alphabet_as_its_normalizer_leaves_it():
    tokenizer = train_subword_tokenizer([[w.lower() for w in words] for words in TINY_TEXT], vocab_size=400,
                                        min_frequency=1, lowercase=True)
    alphabet = base_alphabet(lowercase=True)
    assert "A" not in alphabet and "ï" not in alphabet and "i" in alphabet  # lower-cased, accents stripped
    assert unknown_words(tokenizer, IN_WORDS) == []


def test_the_size_asked_must_leave_room_for_the_base_alphabet():
    smallest = len(SPECIAL_TOKENS) + 2 * len(base_alphabet())
    assert len(train_subword_tokenizer(TINY_TEXT, vocab_size=smallest, min_frequency=1)) == smallest
    with pytest.raises(ValueError, match="base alphabet"):
        train_subword_tokenizer(TINY_TEXT, vocab_size=smallest - 1, min_frequency=1)


def test_a_learned_vocabulary_is_marked_and_its_description_holds_no_word(tiny_vocabulary):
    assert tiny_vocabulary.init_kwargs[CORPUS_VOCABULARY_MARK] is True
    source = tiny_vocabulary.init_kwargs[VOCABULARY_SOURCE_KEY]
    assert not [word for words in TINY_TEXT for word in words if len(word) > 2 and word in source]
    unmarked = train_subword_tokenizer(TINY_TEXT, vocab_size=400, min_frequency=1, from_corpus=False)
    assert CORPUS_VOCABULARY_MARK not in unmarked.init_kwargs
    assert unmarked.get_vocab() == tiny_vocabulary.get_vocab()


def test_the_vocabulary_with_its_alphabet_is_the_same_in_every_process(tmp_path):
    code = ("import sys\n"
            f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
            "from clinical_ner_crf.subwords import train_subword_tokenizer\n"
            f"train_subword_tokenizer({TINY_TEXT!r} * 5, vocab_size=400, min_frequency=1).save_pretrained(sys.argv[1])\n")
    digests = set()
    for index in range(2):
        folder = tmp_path / f"process{index}"
        subprocess.run([sys.executable, "-c", code, str(folder)], check=True, capture_output=True,
                       env={**os.environ, "PYTHONHASHSEED": str(index + 11)})  # different string hashing
        digests.add(hashlib.sha256((folder / "tokenizer.json").read_bytes()).hexdigest())
    assert len(digests) == 1


def test_the_vocabulary_is_a_wordpiece_of_at_most_the_size_asked(words):
    train, test = words
    tokenizer = train_subword_tokenizer(train, vocab_size=400, min_frequency=2)  # 291 of them: the base alphabet
    assert len(tokenizer) == 400
    vocab = tokenizer.get_vocab()
    assert any(piece.startswith(CONTINUATION) for piece in vocab) and "[UNK]" in vocab
    # Every character of the training words is in the vocabulary, so no training word is unknown.
    assert vocabulary_report(tokenizer, train)["unknown_rate"] == 0.0
    report = vocabulary_report(tokenizer, test)
    assert 1.0 <= report["pieces_per_word"] < 3 and report["unknown_rate"] < 0.01
    # A larger size gives longer pieces; a size the corpus cannot fill stops at what it has.
    larger = train_subword_tokenizer(train, vocab_size=100_000)
    assert len(larger) < 100_000 and vocabulary_report(larger, test)["pieces_per_word"] < report["pieces_per_word"]
