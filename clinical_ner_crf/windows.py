"""Windows: the one inference path from text to entities, shared by every entry point.

Training, evaluation and every way of calling a model go through the functions here:

- :func:`encode_word_windows` cuts word lists into model inputs of at most ``max_seq_length``
  subwords, overlapping by ``stride`` subwords, so no word is ever dropped (all the checks on
  ``max_seq_length`` and ``stride`` live here);
- :func:`merge_window_predictions` gives each word the prediction of the window where it has
  the most context; :func:`select_predictions` reads tags and confidences from a model's output
  (CRF: Viterbi path and marginals; linear: softmax argmax);
- :func:`predict_notes` runs a model over notes of any length: sentences and words
  (``tagging.py``) -> windows -> length-sorted batches -> merge -> entities with confidences.
  ``annotate_notes.py`` (CLI and ``NoteAnnotator``) call it; :class:`NerPipeline` is the same
  code behind the ``pipeline("token-classification")`` API, and travels beside a saved CRF model
  (with ``tagging.py``) so that ``pipeline(model=path_or_repo, trust_remote_code=True)`` gives the
  same entities as the command line, to the last character of the note.

Depends on torch, transformers and ``tagging.py`` only (no ``datasets``, no training script); ``tagging.py`` is
imported relatively, which works both in the library and inside a saved model folder, where it sits beside this file.
torch is imported by the functions that run a PyTorch model, not at module level, so that the ONNX backend
(``onnx_backend.py``: windows, merge and entities from here) runs where torch is not installed.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import shutil
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from transformers import AutoTokenizer

from .tagging import (  # noqa: F401  (the window defaults: windows.DEFAULT_* for those who import them here)
    DEFAULT_BATCH_SIZE, DEFAULT_MAX_SEQ_LENGTH, DEFAULT_STRIDE, bio_to_spans, check_labels, split_sentences,
    tokenize_words,
)

if TYPE_CHECKING:  # annotations only; the functions that run torch import it themselves
    import torch

logger = logging.getLogger(__name__)

CRF_MODEL_TYPE = "crf_token_classification"
# The temperature of entity confidences (apply_temperature) that run_ner_crf.py --calibrate_confidence fits on the
# validation split and saves in the model's config; the inference path applies it to every entity confidence.
CONFIG_TEMPERATURE = "entity_confidence_temperature"
CONFIDENCE_CLIP = 1e-6  # confidences are clipped to [CLIP, 1 - CLIP] before their log-odds are taken
# Copied beside a saved CRF model: the pipeline class and what it imports.
PIPELINE_FILES = ("windows.py", "tagging.py")
PIPELINE_CLASS = "windows.NerPipeline"


# ---------------------------------------------------------------------------
# Model facts: labels, decoding kind, how many positions the encoder takes
# ---------------------------------------------------------------------------


def is_crf_model(model) -> bool:
    """A CRF model (decoded with Viterbi), also when loaded from a Hub copy of modeling_crf.py."""
    return getattr(model.config, "model_type", None) == CRF_MODEL_TYPE


def model_labels(model) -> list[str]:
    """The model's tags in id order; they must be IOB2 (``O``, ``B-X``, ``I-X``)."""
    id2label = model.config.id2label
    return check_labels([id2label[key] for key in sorted(id2label, key=int)])


def encoder_max_positions(config) -> int | None:
    """How many tokens (special tokens included) the encoder of ``config`` accepts, or None if unknown.

    For a CRF config this is its encoder's; RoBERTa-style position ids start after the padding
    index, so those encoders take ``max_position_embeddings - pad_token_id - 1`` tokens.
    """
    encoder_config = getattr(config, "encoder_config", None) or config
    positions = getattr(encoder_config, "max_position_embeddings", None)
    if not isinstance(positions, int) or positions <= 0:
        return None
    roberta_like = getattr(encoder_config, "model_type", "") in ("roberta", "xlm-roberta", "camembert", "longformer")
    if roberta_like and encoder_config.pad_token_id is not None:
        positions -= encoder_config.pad_token_id + 1
    return positions


def max_input_length(model, tokenizer, requested: int | None = None) -> int:
    """Tokens per window: ``requested`` (default :data:`DEFAULT_MAX_SEQ_LENGTH`) capped at what the encoder's
    positions and the tokenizer allow; capping a length the caller asked for is logged."""
    limits = [limit for limit in (encoder_max_positions(model.config), getattr(tokenizer, "model_max_length", None))
              if isinstance(limit, int) and 0 < limit < 1_000_000]
    if requested is None:
        return min([DEFAULT_MAX_SEQ_LENGTH, *limits])
    limit = min(limits, default=requested)
    if requested > limit:
        logger.warning("max_seq_length %d is more than the model takes; using %d", requested, limit)
        return limit
    return requested


# ---------------------------------------------------------------------------
# Tokenizer for word lists
# ---------------------------------------------------------------------------


def needs_prefix_space(tokenizer) -> bool:
    """Whether a fast byte-level BPE tokenizer was loaded without ``add_prefix_space``."""
    if getattr(tokenizer, "add_prefix_space", None) is not False or not getattr(tokenizer, "is_fast", False):
        return False
    return "ByteLevel" in json.dumps(json.loads(tokenizer.backend_tokenizer.to_str()).get("pre_tokenizer"))


def load_tokenizer(name_or_path: str, *, revision: str = "main", token: str | None = None,
                   trust_remote_code: bool = False, cache_dir: str | None = None):
    """A fast tokenizer that takes pre-split words (``is_split_into_words=True``) correctly."""
    kwargs = dict(cache_dir=cache_dir, token=token, revision=revision, trust_remote_code=trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    if needs_prefix_space(tokenizer):
        # Byte-level BPE (RoBERTa, GPT-2, ...) takes pre-split words only with a prefix space;
        # without it, it tokenizes them wrongly and says nothing.
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, add_prefix_space=True, **kwargs)
    if not tokenizer.is_fast:
        raise ValueError(f"{name_or_path}: a fast tokenizer is needed (word alignment uses word_ids())")
    return tokenizer


def word_tokenizer(tokenizer):
    """``tokenizer``, or a reload of it with a prefix space where pre-split words need one."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("a fast tokenizer is needed (word alignment uses word_ids())")
    if needs_prefix_space(tokenizer):
        return AutoTokenizer.from_pretrained(tokenizer.name_or_path, add_prefix_space=True)
    return tokenizer


# ---------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------


def window_budget(tokenizer, max_seq_length: int, stride: int) -> int:
    """Subwords of words per window, after checking ``max_seq_length`` and ``stride``."""
    budget = max_seq_length - tokenizer.num_special_tokens_to_add(pair=False)
    if budget < 1:
        raise ValueError(f"max_seq_length {max_seq_length} leaves no room for words")
    if not 0 <= stride < budget:
        raise ValueError(f"stride must be at least 0 and smaller than the {budget} subwords of a window "
                         f"(max_seq_length {max_seq_length}), got {stride}")
    return budget


def word_windows(subword_counts: Sequence[int], budget: int, stride: int) -> list[tuple[int, int]]:
    """Cut a sentence into word windows of at most ``budget`` subwords, overlapping by up to
    ``stride`` subwords, so that every word is in at least one window.

    A single word longer than the budget gets a window of its own (its first subword still
    carries its label; the tokenizer truncates the rest).
    """
    num_words = len(subword_counts)
    if num_words == 0:
        return []
    windows, start = [], 0
    while True:
        end, used = start, 0
        while end < num_words and used + subword_counts[end] <= budget:
            used += subword_counts[end]
            end += 1
        end = max(end, start + 1)
        windows.append((start, end))
        if end >= num_words:
            return windows
        # Step back over up to `stride` subwords of context, but always move forward.
        next_start, overlap = end, 0
        while next_start - 1 > start and overlap + subword_counts[next_start - 1] <= stride:
            next_start -= 1
            overlap += subword_counts[next_start]
        start = next_start


def encode_word_windows(
    sentences: Sequence[Sequence[str]],
    tokenizer,
    max_seq_length: int,
    stride: int,
    tag_ids: Sequence[Sequence[int]] | None = None,
    label_all_tokens: bool = False,
    b_to_i: Sequence[int] | None = None,
) -> dict[str, list]:
    """Tokenize word lists into model inputs, one row per window.

    Each row has ``input_ids``, ``attention_mask`` (and ``token_type_ids`` if the tokenizer
    makes them), ``label_mask`` (the positions the model labels: first subwords, or every
    subword with ``label_all_tokens``), ``word_index`` (the sentence word each position
    belongs to, -1 for special tokens), ``labels`` (when ``tag_ids`` is given; -100 off the
    labelled positions; continuation subwords get ``b_to_i`` of their word's tag) and
    ``sentence_index``/``window_start``/``window_end``. ``max_seq_length`` and ``stride`` are
    checked here (:func:`window_budget`), for training and inference alike.

    A window that starts inside an entity (its first word tagged ``I-X``) gets ``B-X`` for that
    word, since the window is a sequence of its own and IOB2 opens an entity with ``B-`` (the CRF
    could not score the gold path otherwise); ``starts_inside_entity`` marks those windows.
    """
    budget = window_budget(tokenizer, max_seq_length, stride)
    counts_encoding = tokenizer(list(map(list, sentences)), is_split_into_words=True, add_special_tokens=False,
                                verbose=False)
    rows: dict[str, list] = {
        key: [] for key in ("input_ids", "attention_mask", "label_mask", "word_index", "sentence_index",
                            "window_start", "window_end")
    }
    if tag_ids is not None:
        rows["labels"], rows["starts_inside_entity"] = [], []
        inside_to_begin = {inside: begin for begin, inside in enumerate(b_to_i or ()) if inside != begin}
    window_words, window_origin = [], []
    for sentence_index, words in enumerate(sentences):
        counts = [0] * len(words)
        for word_id in counts_encoding.word_ids(sentence_index):
            if word_id is not None:
                counts[word_id] += 1
        # A word the tokenizer drops entirely (a control character, say) stands in as the unknown
        # token, so that every word keeps a position and a prediction.
        if 0 in counts and tokenizer.unk_token is None:
            raise ValueError(f"the tokenizer drops a word of sentence {sentence_index} and has no unknown token")
        words = [word if count else tokenizer.unk_token for word, count in zip(words, counts)]
        counts = [max(count, 1) for count in counts]
        for start, end in word_windows(counts, budget, stride):
            window_words.append(words[start:end])
            window_origin.append((sentence_index, start, end))
    encoding = tokenizer(window_words, is_split_into_words=True, truncation=True, max_length=max_seq_length)
    for row, (sentence_index, start, end) in enumerate(window_origin):
        word_ids = encoding.word_ids(row)
        label_mask, word_index, labels, previous = [], [], [], None
        for word_id in word_ids:
            first_subword = word_id is not None and word_id != previous
            labelled = first_subword or (word_id is not None and label_all_tokens)
            label_mask.append(labelled)
            word_index.append(-1 if word_id is None else start + word_id)
            if tag_ids is not None:
                if not labelled:
                    labels.append(-100)
                else:
                    tag = tag_ids[sentence_index][start + word_id]
                    labels.append(tag if first_subword or b_to_i is None else b_to_i[tag])
            previous = word_id
        rows["input_ids"].append(encoding["input_ids"][row])
        rows["attention_mask"].append(encoding["attention_mask"][row])
        if "token_type_ids" in encoding:
            rows.setdefault("token_type_ids", []).append(encoding["token_type_ids"][row])
        rows["label_mask"].append(label_mask)
        rows["word_index"].append(word_index)
        rows["sentence_index"].append(sentence_index)
        rows["window_start"].append(start)
        rows["window_end"].append(end)
        if tag_ids is not None:
            first_tag = tag_ids[sentence_index][start]
            inside = start > 0 and first_tag in inside_to_begin
            if inside:
                labels[labels.index(first_tag)] = inside_to_begin[first_tag]  # the window's first labelled position
            rows["labels"].append(labels)
            rows["starts_inside_entity"].append(inside)
    return rows


class WindowCollator:
    """Dynamic padding for window rows: pads to the longest row of the batch."""

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None):
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        import torch

        length = max(len(feature["input_ids"]) for feature in features)
        if self.pad_to_multiple_of:
            length = math.ceil(length / self.pad_to_multiple_of) * self.pad_to_multiple_of
        padding = {"input_ids": self.pad_token_id, "attention_mask": 0, "token_type_ids": 0, "labels": -100,
                   "label_mask": False}
        batch = {}
        for key, value in padding.items():
            if key in features[0]:
                rows = [list(feature[key]) + [value] * (length - len(feature[key])) for feature in features]
                batch[key] = torch.tensor(rows, dtype=torch.bool if key == "label_mask" else torch.long)
        return batch


# ---------------------------------------------------------------------------
# Predictions: per position, then per word
# ---------------------------------------------------------------------------


def select_predictions(outputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position predicted tag ids and their probabilities from a model's outputs.

    CRF models give the Viterbi path (``decoded_tags``) and, when asked, marginals; the
    confidence is the marginal probability of the decoded tag. Linear models give the
    argmax of the softmax and its probability.
    """
    import torch

    decoded = getattr(outputs, "decoded_tags", None)
    if decoded is not None:
        marginals = getattr(outputs, "marginals", None)
        if marginals is None:
            confidences = torch.full(decoded.shape, float("nan"), device=decoded.device)
        else:
            confidences = marginals.float().gather(-1, decoded.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        # Forward-backward in float32 can overshoot 1 by a rounding error.
        return decoded, confidences.clamp(0.0, 1.0)
    probabilities = outputs.logits.float().softmax(-1)
    confidences, tag_ids = probabilities.max(-1)
    return tag_ids, confidences


def merge_window_predictions(
    window_rows: Mapping[str, list] | Any,
    position_tags: Sequence[Sequence[int]],
    position_confidences: Sequence[Sequence[float]],
    sentence_lengths: Sequence[int],
) -> list[tuple[list[int], list[float]]]:
    """Word-level tag ids and confidences for each sentence from per-window, per-position output.

    ``window_rows`` holds ``sentence_index``, ``window_start``, ``window_end`` and ``word_index``
    per window (a dict of lists, or a ``datasets.Dataset``). A word seen in several windows takes
    the prediction of the window where it sits farthest from an edge (most context on both
    sides). Where windows hand over, an ``I-X`` that no longer continues an entity is left to the
    caller's IOB2 decoding (strict decoding drops it).
    """
    tags = [[-1] * length for length in sentence_lengths]
    confidences = [[float("nan")] * length for length in sentence_lengths]
    margins = [[-1] * length for length in sentence_lengths]
    columns = window_rows if isinstance(window_rows, Mapping) else window_rows.to_dict()
    for row in range(len(columns["sentence_index"])):
        sentence = columns["sentence_index"][row]
        start, end = columns["window_start"][row], columns["window_end"][row]
        previous_word = None
        for position, word in enumerate(columns["word_index"][row]):
            # Only the first subword of a word carries the word's prediction.
            if word < 0 or word == previous_word:
                previous_word = word if word >= 0 else previous_word
                continue
            previous_word = word
            margin = min(word - start, end - 1 - word)
            if margin > margins[sentence][word]:
                margins[sentence][word] = margin
                tags[sentence][word] = int(position_tags[row][position])
                confidences[sentence][word] = float(position_confidences[row][position])
    for sentence, sentence_tags in enumerate(tags):
        if any(tag < 0 for tag in sentence_tags):
            raise RuntimeError(f"sentence {sentence}: some words received no prediction")
    return list(zip(tags, confidences))


def entity_confidences(tags: Sequence[str], confidences: Sequence[float]) -> list[float]:
    """Confidence of each entity of :func:`tagging.bio_to_spans`: the mean over its words."""
    return [sum(confidences[start:end]) / (end - start) for _, start, end in bio_to_spans(tags)]


def apply_temperature(confidence: float, temperature: float) -> float:
    """An entity confidence calibrated by ``temperature``: ``sigmoid(logit(c) / T)``, ``c`` clipped to
    ``[CONFIDENCE_CLIP, 1 - CONFIDENCE_CLIP]``. ``T > 1`` pulls confidences towards 0.5, ``T < 1`` away from it;
    ``T = 1`` (and an unknown, NaN, confidence) leaves it as it is. Monotone: the order of entities is kept.
    The temperature is fitted by ``calibration.fit_temperature`` (``run_ner_crf.py --calibrate_confidence``)."""
    if not temperature > 0 or math.isinf(temperature):
        raise ValueError(f"the confidence temperature must be a positive number, got {temperature}")
    if temperature == 1.0 or confidence != confidence:
        return confidence
    clipped = min(max(float(confidence), CONFIDENCE_CLIP), 1.0 - CONFIDENCE_CLIP)
    log_odds = math.log(clipped / (1.0 - clipped)) / temperature
    if log_odds >= 0:
        return 1.0 / (1.0 + math.exp(-log_odds))
    odds = math.exp(log_odds)
    return odds / (1.0 + odds)


def confidence_temperature(config) -> float:
    """The entity-confidence temperature a model's config carries (:data:`CONFIG_TEMPERATURE`), 1.0 when none."""
    temperature = getattr(config, CONFIG_TEMPERATURE, None)
    return 1.0 if temperature is None else float(temperature)


# ---------------------------------------------------------------------------
# Notes of any length: the inference path
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Entity:
    """A predicted entity: ``text == note[start:end]``; ``confidence`` is the mean of ``word_confidences``, calibrated
    by the model's temperature when its config has one (:func:`apply_temperature`; the word confidences stay raw)."""

    type: str
    start: int
    end: int
    text: str
    confidence: float
    word_confidences: tuple[float, ...] = ()


@dataclass
class SentencePrediction:
    """Word-level output for one sentence (offsets into the note)."""

    sentence_index: int
    tokens: list[str]
    token_starts: list[int]
    token_ends: list[int]
    pred_tags: list[str]
    confidences: list[float]
    num_windows: int = 1


@dataclass
class NotePrediction:
    """Everything predicted for one note. ``entities`` are after ``min_confidence``."""

    document_id: str
    sentences: list[SentencePrediction] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    num_below_min_confidence: int = 0

    @property
    def num_windows(self) -> int:
        return sum(sentence.num_windows for sentence in self.sentences)


@dataclass
class EncodedNotes:
    """Notes cut into sentences, words and model-input windows (the first half of :func:`predict_notes`)."""

    texts: Mapping[str, str]
    sentence_words: list[list[tuple[str, int, int]]]
    owners: list[tuple[str, int]]  # (document_id, sentence_index) of each sentence with words
    rows: dict[str, list]  # encode_word_windows output
    order: list[int]  # window rows, longest first


def encode_notes(texts: Mapping[str, str], tokenizer, max_seq_length: int, stride: int,
                 label_all_tokens: bool = False) -> EncodedNotes:
    """Sentences (``tagging.split_sentences``), words (``tagging.tokenize_words``) and windows of notes."""
    sentence_words: list[list[tuple[str, int, int]]] = []
    owners: list[tuple[str, int]] = []
    for document_id, text in texts.items():
        for sentence_index, (start, end) in enumerate(split_sentences(text)):
            words = tokenize_words(text, start, end)
            if words:
                sentence_words.append(words)
                owners.append((document_id, sentence_index))
    window_budget(tokenizer, max_seq_length, stride)  # checks the settings even when there is no word
    rows = encode_word_windows([[w for w, _, _ in words] for words in sentence_words], tokenizer, max_seq_length,
                               stride, label_all_tokens=label_all_tokens) if sentence_words else {}
    # Longest first: batches of similar length, and an out-of-memory error shows at once.
    order = sorted(range(len(rows.get("input_ids", ()))), key=lambda row: len(rows["input_ids"][row]), reverse=True)
    return EncodedNotes(texts, sentence_words, owners, rows, order)


def model_input_keys(model, rows: Mapping[str, list]) -> list[str]:
    """The window columns the model's forward takes (DistilBERT takes no token_type_ids; stock heads no label_mask)."""
    accepted = set(inspect.signature(model.forward).parameters)
    crf = is_crf_model(model)
    return [key for key in ("input_ids", "attention_mask", "token_type_ids", "label_mask")
            if key in rows and key in accepted and (crf or key != "label_mask")]


def window_batches(encoded: EncodedNotes, tokenizer, keys: Sequence[str], batch_size: int,
                   pad_to_multiple_of: int | None = None) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    """``(window rows, padded tensors)`` for batches of ``batch_size`` windows, longest first."""
    if batch_size < 1:  # checked now, not when the first batch is asked for
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    collator = WindowCollator(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
    return ((encoded.order[first:first + batch_size],
             collator([{key: encoded.rows[key][row] for key in keys} for row in encoded.order[first:first + batch_size]]))
            for first in range(0, len(encoded.order), batch_size))


def predict_batch(model, batch: Mapping[str, torch.Tensor], batch_rows: Sequence[int],
                  rows: Mapping[str, list]) -> list[tuple[list[int], list[float]]]:
    """Per-position tag ids and confidences of each window of a batch, cut to the window's length."""
    outputs = model(**batch, return_marginals=True) if is_crf_model(model) else model(**batch)
    tag_ids, confidences = select_predictions(outputs)
    tag_ids, confidences = tag_ids.cpu().tolist(), confidences.float().cpu().tolist()
    lengths = [len(rows["input_ids"][row]) for row in batch_rows]
    return [(tag_ids[index][:length], confidences[index][:length]) for index, length in enumerate(lengths)]


def assemble_notes(encoded: EncodedNotes, window_outputs: Mapping[int, tuple[list[int], list[float]]],
                   labels: Sequence[str], min_confidence: float = 0.0, temperature: float = 1.0
                   ) -> dict[str, NotePrediction]:
    """Word tags, confidences and entities per note from the per-window outputs (``{row: (tags, confidences)}``).

    Each entity's confidence is the mean of its words' calibrated by ``temperature`` (:func:`apply_temperature`;
    the model's :func:`confidence_temperature`), and ``min_confidence`` applies to that calibrated value."""
    apply_temperature(0.5, temperature)  # a bad temperature fails here, also for a note without entities
    results = {document_id: NotePrediction(document_id) for document_id in encoded.texts}
    if not encoded.sentence_words:
        return results
    num_rows = len(encoded.rows["input_ids"])
    merged = merge_window_predictions(
        encoded.rows, [window_outputs[row][0] for row in range(num_rows)],
        [window_outputs[row][1] for row in range(num_rows)], [len(words) for words in encoded.sentence_words])
    windows_per_sentence = Counter(encoded.rows["sentence_index"])
    for sentence, ((document_id, sentence_index), words, (tag_ids, word_confidences)) in enumerate(
            zip(encoded.owners, encoded.sentence_words, merged)):
        note, text = results[document_id], encoded.texts[document_id]
        tags = [labels[tag] for tag in tag_ids]
        starts, ends = [start for _, start, _ in words], [end for _, _, end in words]
        note.sentences.append(SentencePrediction(sentence_index, [word for word, _, _ in words], starts, ends, tags,
                                                 word_confidences, windows_per_sentence[sentence]))
        for (entity_type, first, last), confidence in zip(bio_to_spans(tags), entity_confidences(tags, word_confidences)):
            confidence = apply_temperature(confidence, temperature)
            if confidence < min_confidence:
                note.num_below_min_confidence += 1
                continue
            start, end = starts[first], ends[last - 1]
            note.entities.append(Entity(entity_type, start, end, text[start:end], confidence,
                                        tuple(word_confidences[first:last])))
    return results


def predict_notes(
    model,
    tokenizer,
    texts: Mapping[str, str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_seq_length: int | None = None,
    stride: int = DEFAULT_STRIDE,
    device: str | torch.device | None = None,
    bf16: bool = False,
    min_confidence: float = 0.0,
    progress: bool | None = False,
) -> dict[str, NotePrediction]:
    """Word tags, confidences and entities for each note of ``texts`` (``{document_id: text}``).

    Sentences and words come from ``tagging.py``; long sentences become overlapping windows;
    windows of at most ``max_seq_length`` tokens (default: 256 or what the model takes, if less) are
    sorted by length into batches of ``batch_size`` and padded per batch. CRF
    models are decoded with Viterbi over the positions they were trained on and scored with CRF
    marginals; linear models take the softmax argmax at each word's first subword. An entity's
    confidence is the mean over its words, calibrated by the temperature of the model's config if it has one
    (:func:`apply_temperature`). ``device`` defaults to where the model is; ``bf16``
    runs the encoder under bfloat16 autocast on a GPU. ``progress``: a tqdm bar over batches
    (``None``: only on a terminal).
    """
    import torch

    labels = model_labels(model)
    label_all_tokens = is_crf_model(model) and getattr(model.config, "label_alignment", "") == "all_subwords"
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).eval()
    max_seq_length = max_input_length(model, tokenizer, max_seq_length)
    encoded = encode_notes(texts, tokenizer, max_seq_length, stride, label_all_tokens)
    on_gpu = device.type == "cuda"
    if bf16 and not on_gpu:
        logger.warning("bf16 is for GPUs; running in the model's own precision on %s", device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 and on_gpu else nullcontext()
    keys = model_input_keys(model, encoded.rows)

    from tqdm.auto import tqdm

    window_outputs: dict[int, tuple[list[int], list[float]]] = {}
    batches = window_batches(encoded, tokenizer, keys, batch_size, pad_to_multiple_of=8 if on_gpu else None)
    with torch.inference_mode(), autocast:
        for batch_rows, batch in tqdm(batches, total=math.ceil(len(encoded.order) / batch_size), desc="annotating",
                                      unit="batch", disable=None if progress is None else not progress, leave=False):
            batch = {key: value.to(device) for key, value in batch.items()}
            window_outputs.update(zip(batch_rows, predict_batch(model, batch, batch_rows, encoded.rows)))
    return assemble_notes(encoded, window_outputs, labels, min_confidence, confidence_temperature(model.config))


# ---------------------------------------------------------------------------
# The token-classification pipeline on the same path (travels beside a saved CRF model)
# ---------------------------------------------------------------------------


def pipeline_config_entry() -> dict:
    """``config.custom_pipelines`` of a saved model whose folder holds :data:`PIPELINE_FILES`."""
    return {"token-classification": {"impl": PIPELINE_CLASS, "pt": ["AutoModelForTokenClassification"],
                                     "type": "text"}}


def copy_pipeline_files(output_dir) -> list[Path]:
    """Copy :data:`PIPELINE_FILES` into a model folder (``config.custom_pipelines`` points at them)."""
    here = Path(__file__).resolve().parent
    copied = []
    for name in PIPELINE_FILES:
        target = Path(output_dir) / name
        if (here / name).resolve() != target.resolve():
            shutil.copyfile(here / name, target)
        copied.append(target)
    return copied


def _build_ner_pipeline() -> type:
    """:class:`NerPipeline`, defined on first use: ``transformers.pipelines`` takes seconds to import (it brings in
    the image and audio processors, and torch), which the annotator, the ONNX backend and each process of
    ``--num_processes`` do not need."""
    from transformers.pipelines.token_classification import AggregationStrategy, TokenClassificationPipeline

    class NerPipeline(TokenClassificationPipeline):
        """``token-classification`` pipeline on the project's inference path (:func:`predict_notes`).

        ``pipeline("token-classification", model=saved_dir_or_repo, trust_remote_code=True)`` builds it
        for a saved CRF model (its ``config.custom_pipelines``); for any model object pass
        ``pipeline_class=NerPipeline``. A text of any length is tagged to its last character:
        sentences, words and windows (``max_seq_length``, ``stride`` subwords of overlap) as in
        training and in ``annotate_notes.py``; nothing is truncated. CRF models give their Viterbi path
        with marginal confidences, linear models the softmax argmax of each word's first subword.

        - ``aggregation_strategy="none"`` (default): one entry per tagged word (``entity``, ``score``,
          ``index`` = word number in the text, ``word``, ``start``, ``end``).
        - ``"simple"``, ``"first"``, ``"average"``, ``"max"`` (the same here: tags belong to whole
          words): the entities (``entity_group``, ``score`` = mean of its words' confidences, calibrated
          by the config's temperature if it has one, ``word`` = ``text[start:end]``, ``start``, ``end``),
          exactly those of ``annotate_notes.py``.

        ``batch_size`` is the number of windows per forward pass.
        """

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # The pipeline's own batching would try to stack our window batches: we batch windows ourselves.
            self._window_batch_size, self._batch_size = self._batch_size or DEFAULT_BATCH_SIZE, 1
            self.tokenizer = word_tokenizer(self.tokenizer)
            self._labels = model_labels(self.model)
            # transformers.pipeline() replaces the class names in config.custom_pipelines by classes;
            # restore them so that the model can still be saved (JSON) after building a pipeline.
            if getattr(self.model.config, "custom_pipelines", None):
                self.model.config.custom_pipelines = pipeline_config_entry()

        def check_model_type(self, supported_models):
            if not is_crf_model(self.model):
                super().check_model_type(supported_models)

        def __call__(self, inputs, *args, batch_size: int | None = None, **kwargs):
            if batch_size is not None:
                kwargs["window_batch_size"] = batch_size
            return super().__call__(inputs, *args, **kwargs)

        def _sanitize_parameters(self, aggregation_strategy=None, ignore_labels=None, stride=None, max_seq_length=None,
                                 window_batch_size=None, is_split_into_words=False, delimiter=None, **unsupported):
            if is_split_into_words:
                raise ValueError("NerPipeline takes text (it finds sentences and words itself), not pre-split words")
            if unsupported:
                raise ValueError(f"NerPipeline does not take {', '.join(sorted(unsupported))}")
            preprocess = {}
            if stride is not None:
                preprocess["stride"] = stride
            if max_seq_length is not None:
                preprocess["max_seq_length"] = max_seq_length
            if window_batch_size is not None:
                preprocess["batch_size"] = window_batch_size
            postprocess = {}
            if aggregation_strategy is not None:
                postprocess["aggregation_strategy"] = AggregationStrategy(aggregation_strategy.lower()) if isinstance(
                    aggregation_strategy, str) else aggregation_strategy
            if ignore_labels is not None:
                postprocess["ignore_labels"] = ignore_labels
            return preprocess, {}, postprocess

        def preprocess(self, text, stride: int = DEFAULT_STRIDE, max_seq_length: int | None = None,
                       batch_size: int | None = None):
            if not isinstance(text, str):
                raise ValueError(f"NerPipeline takes text (str), got {type(text).__name__}")
            label_all_tokens = is_crf_model(self.model) and getattr(self.model.config, "label_alignment", "") == "all_subwords"
            max_seq_length = max_input_length(self.model, self.tokenizer, max_seq_length)
            encoded = encode_notes({"text": text}, self.tokenizer, max_seq_length, stride, label_all_tokens)
            keys = model_input_keys(self.model, encoded.rows)
            batches = list(window_batches(encoded, self.tokenizer, keys, batch_size or self._window_batch_size))
            if not batches:
                yield {"encoded": encoded, "batch_rows": [], "is_last": True}
            for index, (batch_rows, batch) in enumerate(batches):
                yield {**batch, "encoded": encoded, "batch_rows": batch_rows, "is_last": index == len(batches) - 1}

        def _forward(self, model_inputs):
            encoded, batch_rows = model_inputs.pop("encoded"), model_inputs.pop("batch_rows")
            is_last = model_inputs.pop("is_last")
            outputs = predict_batch(self.model, model_inputs, batch_rows, encoded.rows) if batch_rows else []
            return {"encoded": encoded, "window_outputs": dict(zip(batch_rows, outputs)), "is_last": is_last}

        def postprocess(self, all_outputs, aggregation_strategy=AggregationStrategy.NONE, ignore_labels=None):
            ignore_labels = ["O"] if ignore_labels is None else ignore_labels
            encoded = all_outputs[0]["encoded"]
            window_outputs = {}
            for output in all_outputs:
                window_outputs.update(output["window_outputs"])
            note = assemble_notes(encoded, window_outputs, self._labels,
                                  temperature=confidence_temperature(self.model.config))["text"]
            text = encoded.texts["text"]
            if aggregation_strategy == AggregationStrategy.NONE:
                words = [(tag, confidence, word, start, end) for sentence in note.sentences
                         for tag, confidence, word, start, end in zip(sentence.pred_tags, sentence.confidences,
                                                                      sentence.tokens, sentence.token_starts,
                                                                      sentence.token_ends)]
                return [{"entity": tag, "score": confidence, "index": index, "word": text[start:end], "start": start,
                         "end": end} for index, (tag, confidence, _, start, end) in enumerate(words)
                        if tag not in ignore_labels]
            return [{"entity_group": entity.type, "score": entity.confidence, "word": entity.text, "start": entity.start,
                     "end": entity.end} for entity in note.entities if entity.type not in ignore_labels]

    NerPipeline.__qualname__ = "NerPipeline"  # pickled and named as windows.NerPipeline, where __getattr__ finds it
    return NerPipeline


def __getattr__(name: str):
    # ``windows.NerPipeline`` (``config.custom_pipelines`` names it; ``from windows import NerPipeline``) is built
    # once, when first asked for (PEP 562).
    if name == "NerPipeline":
        globals()[name] = _build_ner_pipeline()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
