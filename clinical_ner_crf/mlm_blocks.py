"""Masked-LM blocks: sentences packed into fixed-length blocks of subwords, whole-word masking (:class:`WholeWordMaskCollator`), and the figures that say whether a corpus is worth pre-training on (padding share, piece entropy, a context-free loss)."""

from __future__ import annotations

import math
from typing import Iterable, Iterator, Sequence

import torch

from .command_line import UsageError
from .subwords import sentence_batches


def iter_blocks(sentences: Iterable[Sequence[str]], tokenizer, max_seq_length: int,
                vocabulary_counts: dict[str, int] | None = None) -> Iterator[tuple[list[int], list[int]]]:
    """:func:`pack_blocks`'s blocks one at a time, ``(input_ids, word_ids)``, the sentences tokenized in bounded
    batches (``subwords.sentence_batches``): the same blocks, in bounded memory whatever the text's length.
    ``vocabulary_counts`` (``words``, ``pieces``, ``unknown``), when given, is filled as ``subwords.vocabulary_report``
    counts, from the same encodings (``subwords.vocabulary_figures`` turns them into its figures)."""
    budget = max_seq_length - 2
    if budget < 1:
        raise UsageError(f"--max_seq_length {max_seq_length} leaves no room for words")
    ids: list[int] = []
    words: list[int] = []

    def block() -> tuple[list[int], list[int]]:
        nonlocal ids, words
        done = ([tokenizer.cls_token_id, *ids, tokenizer.sep_token_id], [-1, *words, -1])
        ids, words = [], []
        return done

    for batch in sentence_batches(sentences):
        encoding = tokenizer(batch, is_split_into_words=True, add_special_tokens=False)
        for row, sentence_ids in enumerate(encoding["input_ids"]):
            word_of = encoding.word_ids(row)
            if vocabulary_counts is not None:
                vocabulary_counts["pieces"] += len(sentence_ids)
                vocabulary_counts["unknown"] += sentence_ids.count(tokenizer.unk_token_id)
            first = 0
            while first < len(sentence_ids):  # one word at a time: its pieces are first..last
                last = first
                while last + 1 < len(sentence_ids) and word_of[last + 1] == word_of[first]:
                    last += 1
                pieces = sentence_ids[first:last + 1]
                if vocabulary_counts is not None:
                    vocabulary_counts["words"] += 1
                if len(ids) + len(pieces) > budget and ids:
                    yield block()
                for offset in range(0, len(pieces), budget):  # a word longer than a block: cut between pieces
                    if offset and ids:
                        yield block()
                    part = pieces[offset:offset + budget]
                    number = words[-1] + 1 if words else 0
                    ids += part
                    words += [number] * len(part)
                first = last + 1
    if ids:
        yield block()


def pack_blocks(sentences: Iterable[Sequence[str]], tokenizer, max_seq_length: int) -> dict[str, list[list[int]]]:
    """The text as one stream of words, packed into blocks of ``max_seq_length`` tokens: ``[CLS] pieces ...
    [SEP]``, with the word each piece belongs to (``word_ids``, -1 for the special tokens; numbered within the
    block). Blocks are filled up to the last word that fits (sentences run on across blocks, as run_mlm.py's
    grouped texts do), so only the last block is short; a word longer than a block is cut between pieces.
    """
    blocks: dict[str, list[list[int]]] = {"input_ids": [], "word_ids": []}
    for ids, words in iter_blocks(sentences, tokenizer, max_seq_length):
        blocks["input_ids"].append(ids)
        blocks["word_ids"].append(words)
    return blocks


def blocks_dataset(blocks: Iterable[tuple[list[int], list[int]]], special_ids: Sequence[int],
                   rows_per_part: int = 10_000):
    """The blocks as a ``datasets.Dataset`` (int32 columns, built a part of ``rows_per_part`` blocks at a time, so
    that no Python list of every block is ever held), their lengths, and the piece counts of
    :func:`context_free_loss`."""
    from datasets import Dataset, Features, Sequence as FeatureSequence, Value, concatenate_datasets

    features = Features({"input_ids": FeatureSequence(Value("int32")), "word_ids": FeatureSequence(Value("int32"))})
    special, counts, lengths, parts = set(special_ids), {}, [], []
    part: dict[str, list[list[int]]] = {"input_ids": [], "word_ids": []}
    for ids, words in blocks:
        part["input_ids"].append(ids)
        part["word_ids"].append(words)
        lengths.append(len(ids))
        count_pieces([ids], special, counts)
        if len(part["input_ids"]) >= rows_per_part:
            parts.append(Dataset.from_dict(part, features=features))
            part = {"input_ids": [], "word_ids": []}
    if part["input_ids"] or not parts:
        parts.append(Dataset.from_dict(part, features=features))
    return (parts[0] if len(parts) == 1 else concatenate_datasets(parts)), lengths, counts


def padding_share(lengths: Sequence[int], batch_size: int) -> float:
    """Padded positions over all positions when batches of ``batch_size`` blocks (in order) are padded to their longest."""
    real = sum(lengths)
    padded = sum(max(lengths[i:i + batch_size]) * len(lengths[i:i + batch_size]) for i in range(0, len(lengths), batch_size))
    return round(1 - real / padded, 6) if padded else 0.0


def count_pieces(rows: Iterable[Sequence[int]], special: set[int], counts: dict[int, int]) -> None:
    """Add how often each piece (not a special token) occurs in ``rows`` to ``counts`` (in order of first sight)."""
    for ids in rows:
        for piece in ids:
            if piece not in special:
                counts[piece] = counts.get(piece, 0) + 1


def piece_entropy(counts: dict[int, int]) -> float:
    """The entropy (nats) of the pieces' frequencies: :func:`context_free_loss` of counted blocks."""
    total = sum(counts.values())
    return round(-sum(c / total * math.log(c / total) for c in counts.values()), 4) if total else 0.0


def context_free_loss(blocks: dict[str, list[list[int]]], special_ids: Sequence[int]) -> float:
    """The masked-LM loss (nats per masked piece) of the best predictor that ignores context: each piece's
    frequency in the blocks. Every piece of a masked word is a target, so the targets follow the pieces'
    frequencies, and this is their entropy. An encoder whose loss is not well below it has learnt little from
    context yet (MLM from scratch sits near it for its first thousands of steps)."""
    counts: dict[int, int] = {}
    count_pieces(blocks["input_ids"], set(special_ids), counts)
    return piece_entropy(counts)


class WholeWordMaskCollator:
    """Pads blocks and masks whole words: each word is chosen with ``mlm_probability``; every piece of a chosen
    word becomes ``[MASK]`` (80%), a random piece (10%) or stays (10%), chosen per word."""

    def __init__(self, tokenizer, mlm_probability: float = 0.15):
        if not 0 < mlm_probability < 1:
            raise UsageError(f"--mlm_probability must be in (0, 1), got {mlm_probability}")
        self.tokenizer, self.mlm_probability = tokenizer, mlm_probability
        special = set(tokenizer.all_special_ids)
        self.random_ids = torch.tensor([i for i in range(len(tokenizer)) if i not in special])

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        length = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), length), self.tokenizer.pad_token_id)
        word_ids = torch.full((len(features), length), -1)
        for row, feature in enumerate(features):
            input_ids[row, :len(feature["input_ids"])] = torch.tensor(feature["input_ids"])
            word_ids[row, :len(feature["word_ids"])] = torch.tensor(feature["word_ids"])
        attention_mask = (torch.arange(length)[None, :] < torch.tensor([len(f["input_ids"]) for f in features])[:, None])
        # One draw per word (words are numbered within each block), applied to all its pieces.
        num_words = int(word_ids.max()) + 1 if (word_ids >= 0).any() else 0
        chosen = torch.rand(len(features), max(num_words, 1)) < self.mlm_probability
        if num_words and not (chosen[:, :num_words].any()):
            chosen[0, torch.randint(int(word_ids[0].max()) + 1, ())] = True  # a batch with nothing to predict has no loss
        action = torch.rand(len(features), max(num_words, 1))
        safe = word_ids.clamp(min=0)
        masked = chosen.gather(1, safe) & (word_ids >= 0)
        labels = torch.where(masked, input_ids, -100)
        word_action = action.gather(1, safe)
        inputs = input_ids.clone()
        inputs[masked & (word_action < 0.8)] = self.tokenizer.mask_token_id
        randomized = masked & (word_action >= 0.8) & (word_action < 0.9)
        inputs[randomized] = self.random_ids[torch.randint(len(self.random_ids), (int(randomized.sum()),))]
        return {"input_ids": inputs, "attention_mask": attention_mask.long(), "labels": labels}
