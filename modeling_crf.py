# coding=utf-8
"""A linear-chain CRF on top of any Hugging Face encoder, for IOB2 token classification.

`CRFForTokenClassification` = encoder (any `AutoModel`: BERT, DistilBERT, RoBERTa, ...; no pooler)
+ dropout + linear emission layer + a `pytorch-crf` CRF. It is the paper's BERT-CRF,
BioBERT-CRF, ClinicalBERT-CRF (pre-trained encoders) and TransformerCRF (random encoder).

This file is self-contained (torch, transformers >= 5, and pytorch-crf: `pip install pytorch-crf`,
imported as `torchcrf`) so that it travels to the Hub beside the weights. A saved model or Hub
repo is custom code: load it with ``trust_remote_code=True``::

    AutoModelForTokenClassification.from_pretrained(path_or_repo, trust_remote_code=True)

Decode positions: the CRF runs over the positions that carry a tag. In `forward` they are
``labels != -100`` when labels are given, else ``label_mask``, else the positions that the
model's token table (`subword_kinds`, filled from the tokenizer by `set_subword_kinds` when the
model is trained) marks as the first subword of a word (every non-special subword for a model
trained with `label_alignment="all_subwords"`). The positions are packed to the left before the
CRF (pytorch-crf silently computes a wrong loss on a mask with gaps).

Any caller gets the CRF's answer: when the model decodes, `logits` are log-probabilities whose
argmax is the Viterbi path on every decode position, and continuation subwords follow their
word (B-X becomes I-X), so the stock `pipeline("token-classification", model=model_object)`,
`Trainer` argmax metrics and `run_ner.py`-style scripts all see the decoded path. The raw scores
stay available as `emissions`.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

import torch
from torch import nn
from torchcrf import CRF
from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification, PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.configuration_utils import SubConfigSpec
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.utils import ModelOutput, logging

logger = logging.get_logger(__name__)

__all__ = [
    "IMPOSSIBLE_SCORE",
    "CRFTokenClassificationConfig",
    "CRFForTokenClassification",
    "CRFTokenClassifierOutput",
    "bio_transition_mask",
    "crf_log_marginals",
    "crf_log_partition",
    "crf_marginals",
    "crf_viterbi",
    "pack_positions",
]

# Score of a transition that IOB2 forbids: large and finite (−inf gives NaN gradients in logsumexp).
IMPOSSIBLE_SCORE = -10000.0
LABEL_ALIGNMENTS = ("first_subword", "all_subwords")
# `subword_kinds` values: what a token id is in a text (0 also means "unknown": a model saved without the table).
WORD_START, CONTINUATION, SPECIAL = 0, 1, 2
_DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")


# ---------------------------------------------------------------------------------------------
# IOB2 constraints
# ---------------------------------------------------------------------------------------------


def _label_list(id2label) -> list[str]:
    if isinstance(id2label, dict):
        return [id2label[k] for k in sorted(id2label, key=int)]
    return list(id2label)


def _split_bio(label: str) -> tuple[str, str | None]:
    """``"B-Drug"`` -> ``("B", "Drug")``; ``"O"`` -> ``("O", None)``; raises on anything else."""
    if label == "O":
        return "O", None
    if len(label) > 2 and label[:2] in ("B-", "I-"):
        return label[0], label[2:]
    raise ValueError(
        f"label {label!r} is not IOB2 (expected 'O', 'B-X' or 'I-X'); "
        "set use_bio_constraints=False for other tag schemes"
    )


def bio_transition_mask(id2label) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which CRF scores IOB2 allows, as bool tensors ``(start [C], transitions [C, C], end [C])``.

    ``transitions[i, j]`` is the move from tag ``i`` to tag ``j``. Forbidden: start -> I-X,
    O -> I-X, and B-X / I-X -> I-Y with Y != X. Every tag may end a sequence.
    `id2label` is a dict {id: name} or a list of names in id order.
    """
    parts = [_split_bio(label) for label in _label_list(id2label)]
    n = len(parts)
    start = torch.tensor([prefix != "I" for prefix, _ in parts], dtype=torch.bool)
    trans = torch.ones(n, n, dtype=torch.bool)
    for j, (prefix_j, type_j) in enumerate(parts):
        if prefix_j != "I":
            continue
        for i, (prefix_i, type_i) in enumerate(parts):
            trans[i, j] = prefix_i != "O" and type_i == type_j
    return start, trans, torch.ones(n, dtype=torch.bool)


def _inside_to_begin(id2label) -> torch.Tensor:
    """Tag id map sending I-X to B-X (when B-X exists), every other tag to itself."""
    labels = _label_list(id2label)
    ids = {label: i for i, label in enumerate(labels)}
    return torch.tensor([ids.get("B-" + label[2:], i) if label.startswith("I-") else i for i, label in enumerate(labels)])


def _begin_to_inside(id2label) -> torch.Tensor:
    """Tag id map sending B-X to I-X (when I-X exists), every other tag to itself."""
    labels = _label_list(id2label)
    ids = {label: i for i, label in enumerate(labels)}
    return torch.tensor([ids.get("I-" + label[2:], i) if label.startswith("B-") else i for i, label in enumerate(labels)])


# ---------------------------------------------------------------------------------------------
# CRF algorithms over left-packed positions (batched, log-space, float32)
# ---------------------------------------------------------------------------------------------


def pack_positions(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pack the True positions of ``mask`` [B, T].

    Returns ``index`` [B, L] (the original position of packed step ``l``; L = most positions in a
    row) and ``packed_mask`` [B, L] (a contiguous prefix per row; a row may be empty).
    """
    mask = mask.bool()
    lengths = mask.sum(1)
    steps = int(lengths.max()) if mask.numel() else 0
    # A stable sort of "not selected" puts the selected positions first, in their original order.
    index = torch.argsort((~mask).to(torch.int32), dim=1, stable=True)[:, :steps]
    packed_mask = torch.arange(steps, device=mask.device)[None, :] < lengths[:, None]
    return index, packed_mask


def crf_log_partition(emissions, mask, start, transitions, end) -> torch.Tensor:
    """log Z per row (forward algorithm). ``mask`` [B, L] must be a left-aligned prefix, first step on."""
    score = start + emissions[:, 0]
    for t in range(1, emissions.size(1)):
        nxt = torch.logsumexp(score[:, :, None] + transitions[None], dim=1) + emissions[:, t]
        score = torch.where(mask[:, t, None], nxt, score)
    return torch.logsumexp(score + end, dim=1)


def crf_viterbi(emissions, mask, start, transitions, end) -> torch.Tensor:
    """Best tag path [B, L] (LongTensor, batched back-tracking; values past a row's length are junk)."""
    batch, steps, num_tags = emissions.shape
    score = start + emissions[:, 0]
    identity = torch.arange(num_tags, device=emissions.device).expand(batch, num_tags)
    backpointers = []
    for t in range(1, steps):
        best, arg = (score[:, :, None] + transitions[None]).max(dim=1)
        on = mask[:, t, None]
        score = torch.where(on, best + emissions[:, t], score)
        # Past the end of a row the back-pointer is the identity, so back-tracking passes through.
        backpointers.append(torch.where(on, arg, identity))
    tag = (score + end).argmax(dim=1)
    path = [tag]
    for pointers in reversed(backpointers):
        tag = pointers.gather(1, tag[:, None]).squeeze(1)
        path.append(tag)
    path.reverse()
    return torch.stack(path, dim=1)


def crf_marginals(emissions, mask, start, transitions, end) -> torch.Tensor:
    """Per-step tag probabilities [B, L, C] by forward-backward (zeros past a row's end).

    Runs in probability space, normalised at every step: a multiply-and-sum over [B, C, C] per
    step instead of a log-sum-exp (about 2.5x faster on CPU, where the annotator's confidences
    pay for it; not a matrix product, whose rounding would depend on the batch size). A batch
    whose scores are so spread that a step underflows to zero is redone in log space
    (:func:`crf_log_marginals`), so the result is always finite.
    """
    batch, steps, num_tags = emissions.shape
    # Every shift below is a per-row or global constant: it cancels in the per-step normalisation.
    potentials = (emissions - emissions.max(-1, keepdim=True).values).exp()
    trans = (transitions - transitions.max()).exp()  # forbidden transitions become exactly 0
    start_p, end_p = (start - start.max()).exp(), (end - end.max()).exp().expand(batch, num_tags)

    def normalized(x):
        return x / x.sum(-1, keepdim=True)

    alpha = normalized(start_p * potentials[:, 0])
    alphas = [alpha]
    for t in range(1, steps):
        alpha = torch.where(mask[:, t, None], normalized((alpha[:, :, None] * trans).sum(1) * potentials[:, t]), alpha)
        alphas.append(alpha)
    lengths = mask.sum(1)
    beta = normalized(end_p)
    betas = [beta]
    for t in range(steps - 2, -1, -1):
        # Restarted at each row's last step, as in the log-space version.
        nxt = normalized((trans * (potentials[:, t + 1] * beta)[:, None, :]).sum(2))
        beta = torch.where((t < lengths - 1)[:, None], nxt, beta)
        betas.append(beta)
    betas.reverse()
    marginals = torch.where(mask[:, :, None], normalized(torch.stack(alphas, 1) * torch.stack(betas, 1)), 0.0)
    if not torch.isfinite(marginals).all():
        return crf_log_marginals(emissions, mask, start, transitions, end)
    return marginals


def crf_log_marginals(emissions, mask, start, transitions, end) -> torch.Tensor:
    """:func:`crf_marginals` in log space: slower, but never underflows."""
    batch, steps, num_tags = emissions.shape
    alphas = [start + emissions[:, 0]]
    for t in range(1, steps):
        nxt = torch.logsumexp(alphas[-1][:, :, None] + transitions[None], dim=1) + emissions[:, t]
        alphas.append(torch.where(mask[:, t, None], nxt, alphas[-1]))
    lengths = mask.sum(1)
    beta = end.expand(batch, num_tags)
    betas = [beta]
    for t in range(steps - 2, -1, -1):
        # beta_t(i) = logsumexp_j trans[i, j] + emit_{t+1}(j) + beta_{t+1}(j), restarted at each row's last step.
        nxt = torch.logsumexp(transitions[None] + (emissions[:, t + 1] + beta)[:, None, :], dim=2)
        beta = torch.where((t < lengths - 1)[:, None], nxt, end.expand(batch, num_tags))
        betas.append(beta)
    betas.reverse()
    log_z = torch.logsumexp(alphas[-1] + end, dim=1)
    log_marg = torch.stack(alphas, 1) + torch.stack(betas, 1) - log_z[:, None, None]
    return log_marg.exp() * mask[:, :, None]


def _with_argmax(probabilities, tags, where, num_labels: int) -> torch.Tensor:
    """`probabilities` [B, T, C] changed, at the `where` positions whose argmax is not `tags` [B, T], so that it
    is: the tag keeps its probability and the rest is spread evenly over the other tags (plus 1e-6 for the tag
    when even that leaves it behind). Elsewhere unchanged."""
    tag_probability = probabilities.gather(-1, tags[..., None]).squeeze(-1)
    disagree = where & (probabilities.argmax(-1) != tags)
    if not disagree.any():
        return probabilities
    rest = ((1.0 - tag_probability) / max(num_labels - 1, 1)).clamp(min=0.0)
    spread = rest[..., None].expand_as(probabilities).clone()
    spread.scatter_(-1, tags[..., None], torch.maximum(tag_probability, rest * (1 + 1e-6))[..., None])
    return torch.where(disagree[..., None], spread, probabilities)


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


class CRFTokenClassificationConfig(PreTrainedConfig):
    r"""
    Configuration of [`CRFForTokenClassification`]: an encoder config plus the tag set and the head.

    Args:
        encoder_config (`PreTrainedConfig` or `dict`, *optional*):
            Config of the encoder, any `AutoModel` architecture (a dict needs its `model_type`).
            Defaults to a `bert-base` sized `BertConfig`.
        classifier_dropout (`float`, *optional*, defaults to 0.2):
            Dropout on the encoder output before the emission layer (the paper's 0.2).
        use_bio_constraints (`bool`, *optional*, defaults to `True`):
            Fix the transitions that IOB2 forbids to `IMPOSSIBLE_SCORE`; they are never learned.
            Labels must then be `O`, `B-X` or `I-X`.
        label_alignment (`str`, *optional*, defaults to `"first_subword"`):
            Which subwords carried a tag in training: `"first_subword"` (the first subword of each
            word) or `"all_subwords"` (every subword, as in the paper). The pipeline decodes over
            the same kind of positions.
        id2label / label2id: the tag set, as in every transformers config.

    Example:

    ```python
    >>> from transformers import DistilBertConfig
    >>> config = CRFTokenClassificationConfig(
    ...     encoder_config=DistilBertConfig(), id2label={0: "O", 1: "B-Drug", 2: "I-Drug"})
    >>> model = CRFForTokenClassification(config)  # random encoder (TransformerCRF)
    ```
    """

    model_type = "crf_token_classification"
    sub_configs_defaults = {"encoder_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    encoder_config: dict | PreTrainedConfig | None = None
    classifier_dropout: float = 0.2
    use_bio_constraints: bool = True
    label_alignment: str = "first_subword"

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.label_alignment not in LABEL_ALIGNMENTS:
            raise ValueError(f"label_alignment must be one of {LABEL_ALIGNMENTS}, got {self.label_alignment!r}")
        if self.label2id is None or len(self.label2id) != len(self.id2label):
            self.label2id = {label: i for i, label in self.id2label.items()}
        # `PreTrainedConfig()` defaults to LABEL_0, LABEL_1 (transformers instantiates configs without
        # arguments internally); the model checks those, real label sets are checked here.
        if self.use_bio_constraints and not self._has_default_labels():
            bio_transition_mask(self.id2label)

    def _has_default_labels(self) -> bool:
        return all(_DEFAULT_LABEL.match(str(label)) for label in self.id2label.values())


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------


@dataclass
class CRFTokenClassifierOutput(ModelOutput):
    """
    Output of [`CRFForTokenClassification`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            CRF negative log-likelihood averaged over the rows of the batch, in float32.
        logits (`torch.FloatTensor` of shape `(batch_size, sequence_length, num_labels)`):
            When the model decodes (always, except while training with labels): log-probabilities
            built from the CRF so that `logits.argmax(-1)` is the Viterbi path. At a decode position
            they are the log CRF marginals; where another tag has a larger marginal than the
            Viterbi tag (rare), the Viterbi tag keeps its marginal and the rest is spread evenly
            over the other tags (if that still leaves it below them, it gets 1e-6 more). At a
            continuation subword they are those of its word with each B-X folded into I-X, made
            the same way to have the word's tag (B-X as I-X) as argmax: the subword follows its
            word. Elsewhere (special tokens, padding) 0. So
            `logits.softmax(-1)` at the decoded tag is its marginal probability. While training
            with labels: the emissions.
        emissions (`torch.FloatTensor` of shape `(batch_size, sequence_length, num_labels)`):
            The emission scores of the linear layer, as the CRF sees them.
        decoded_tags (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Viterbi tag ids at the decode positions, -100 elsewhere. Skipped while training with labels.
        marginals (`torch.FloatTensor` of shape `(batch_size, sequence_length, num_labels)`, *optional*):
            CRF marginal probability of each tag at each decode position (zeros elsewhere); only
            with `return_marginals=True`.
        hidden_states, attentions: passed through from the encoder when asked for.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    emissions: torch.FloatTensor | None = None
    decoded_tags: torch.LongTensor | None = None
    marginals: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


def _encoder_init_kwargs(encoder_config) -> dict:
    # The pooler is unused for tagging: drop it where the encoder class lets us (BERT, RoBERTa, ...).
    try:
        encoder_class = AutoModel._model_mapping[type(encoder_config)]
    except KeyError:
        return {}
    if isinstance(encoder_class, (list, tuple)):
        encoder_class = encoder_class[0]
    return {"add_pooling_layer": False} if "add_pooling_layer" in inspect.signature(encoder_class.__init__).parameters else {}


class CRFPreTrainedModel(PreTrainedModel):
    config_class = CRFTokenClassificationConfig
    base_model_prefix = "encoder"
    main_input_name = "input_ids"
    # The encoder decides: it raises itself if it cannot run the requested attention.
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _keys_to_ignore_on_load_unexpected = [r"pooler"]
    _keep_in_fp32_modules_strict = ["crf"]  # transition scores stay float32 when loading in bf16/fp16
    supports_gradient_checkpointing = True  # applied by the encoder's layers
    # The loss is a mean over rows; the Trainer must not pass `num_items_in_batch` nor skip its own
    # gradient-accumulation scaling because `forward` takes **kwargs.
    accepts_loss_kwargs = False

    @torch.no_grad()
    def _init_weights(self, module):
        # The encoder initialises itself (transformers dispatches to its own `_init_weights`).
        std = getattr(self.config.encoder_config, "initializer_range", 0.02)
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, CRF):
            fresh = not getattr(module.transitions, "_is_hf_initialized", False)
            for param in (module.start_transitions, module.transitions, module.end_transitions):
                init.uniform_(param, -0.1, 0.1)  # pytorch-crf's own initialisation
            if fresh and self.config.use_bio_constraints:
                # Only cosmetic (forward masks them anyway): the stored weights show the fixed scores.
                start_ok, trans_ok, end_ok = bio_transition_mask(self.config.id2label)
                module.start_transitions.masked_fill_(~start_ok.to(module.start_transitions.device), IMPOSSIBLE_SCORE)
                module.transitions.masked_fill_(~trans_ok.to(module.transitions.device), IMPOSSIBLE_SCORE)
        elif isinstance(module, CRFForTokenClassification):
            # A checkpoint without the table (saved before it existed): every token decodes.
            init.zeros_(module.subword_kinds)


class CRFForTokenClassification(CRFPreTrainedModel):
    """Encoder + dropout + linear emissions + CRF (pytorch-crf), for IOB2 token classification."""

    def __init__(self, config: CRFTokenClassificationConfig, encoder: PreTrainedModel | None = None):
        super().__init__(config)
        if config.use_bio_constraints:
            if config._has_default_labels():
                raise ValueError(
                    "use_bio_constraints=True needs IOB2 label names: pass id2label/label2id "
                    "(e.g. O, B-Drug, I-Drug) or use_bio_constraints=False"
                )
            bio_transition_mask(config.id2label)
        self.num_labels = config.num_labels
        self.encoder = encoder if encoder is not None else AutoModel.from_config(
            config.encoder_config, **_encoder_init_kwargs(config.encoder_config)
        )
        hidden_size = self.encoder.config.hidden_size  # DistilBERT maps hidden_size to dim
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(hidden_size, config.num_labels)
        self.crf = CRF(config.num_labels, batch_first=True)
        self._encoder_takes_token_type_ids = "token_type_ids" in inspect.signature(self.encoder.forward).parameters
        self._allowed_cache: dict = {}
        # What each token id is in a text (WORD_START, CONTINUATION, SPECIAL), so that a forward without
        # `label_mask` (the stock pipeline) decodes the positions training used. Saved with the weights.
        vocab_size = self.encoder.get_input_embeddings().num_embeddings
        self.register_buffer("subword_kinds", torch.zeros(vocab_size, dtype=torch.int8), persistent=True)
        self.post_init()

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_encoder_pretrained(
        cls,
        encoder_name_or_path: str,
        id2label: dict | None = None,
        label2id: dict | None = None,
        classifier_dropout: float = 0.2,
        use_bio_constraints: bool = True,
        label_alignment: str = "first_subword",
        **hub_kwargs,
    ) -> "CRFForTokenClassification":
        """A pre-trained encoder (Hub id or local path) with a fresh dropout + emission + CRF head.

        `hub_kwargs` (revision, token, cache_dir, local_files_only, dtype, attn_implementation, ...)
        go to `AutoModel.from_pretrained`; a pooler in the checkpoint is left out.
        """
        if id2label is None and label2id is not None:
            id2label = {i: label for label, i in label2id.items()}
        if id2label is None:
            raise ValueError("from_encoder_pretrained needs id2label (or label2id)")
        id2label = {int(i): label for i, label in id2label.items()}
        config_keys = ("revision", "token", "cache_dir", "local_files_only", "trust_remote_code", "subfolder")
        encoder_config = AutoConfig.from_pretrained(
            encoder_name_or_path, **{k: v for k, v in hub_kwargs.items() if k in config_keys}
        )
        encoder = AutoModel.from_pretrained(
            encoder_name_or_path, config=encoder_config, **_encoder_init_kwargs(encoder_config), **hub_kwargs
        )
        config = CRFTokenClassificationConfig(
            encoder_config=encoder.config,
            # Without it the new config resets the encoder config's attention to None (eager):
            # keep what AutoModel chose (sdpa, or the attn_implementation passed in hub_kwargs).
            attn_implementation=encoder.config._attn_implementation,
            id2label=id2label,
            label2id=label2id or {label: i for i, label in id2label.items()},
            classifier_dropout=classifier_dropout,
            use_bio_constraints=use_bio_constraints,
            label_alignment=label_alignment,
        )
        model = cls(config, encoder=encoder)
        model.classifier.to(next(encoder.parameters()).dtype)  # the CRF stays float32
        return model

    def set_subword_kinds(self, tokenizer) -> None:
        """Fill `subword_kinds` from a fast `tokenizer`: special tokens (not the unknown token, which
        stands for a word), continuation subwords (those with the WordPiece continuation prefix,
        e.g. "##"), and word starts (everything else).

        Then a forward without `label_mask` (e.g. the stock token-classification pipeline) decodes
        the first subword of every word, as in training. Exact for WordPiece tokenizers (BERT,
        DistilBERT, MiniLM, ...); for tokenizers without a continuation prefix (byte-level BPE,
        SentencePiece) every non-special token is decoded: pass `label_mask` for those.
        """
        import json

        prefix = None
        if getattr(tokenizer, "is_fast", False):
            prefix = json.loads(tokenizer.backend_tokenizer.to_str()).get("model", {}).get("continuing_subword_prefix")
        kinds = torch.full_like(self.subword_kinds, WORD_START, device="cpu")
        size = kinds.numel()
        if prefix:
            for token, index in tokenizer.get_vocab().items():
                if index < size and token.startswith(prefix):
                    kinds[index] = CONTINUATION
        for index in tokenizer.all_special_ids:
            # The unknown token stands for a whole word: it starts one.
            if index is not None and 0 <= index < size and index != tokenizer.unk_token_id:
                kinds[index] = SPECIAL
        self.subword_kinds.copy_(kinds.to(self.subword_kinds.device))

    # -- CRF scores --------------------------------------------------------------------------

    def _allowed(self, device):
        # Not buffers: from_pretrained builds the model on the meta device; these come from the config.
        if device not in self._allowed_cache:
            masks = bio_transition_mask(self.config.id2label) + (_inside_to_begin(self.config.id2label),)
            self._allowed_cache[device] = tuple(m.to(device) for m in masks)
        return self._allowed_cache[device]

    def _repair_gold_tags(self, tags: torch.Tensor, packed_mask: torch.Tensor) -> torch.Tensor:
        """I-X that IOB2 forbids in a gold path (e.g. a window that starts inside an entity) -> B-X.

        Without this an invalid gold path scores about IMPOSSIBLE_SCORE and its loss swamps the batch.
        """
        start_ok, trans_ok, _, inside_to_begin = self._allowed(tags.device)
        previous = torch.cat([tags[:, :1], tags[:, :-1]], dim=1)
        allowed = trans_ok[previous, tags]
        allowed[:, 0] = start_ok[tags[:, 0]]
        # Fixes depend only on the previous tag's type, which a fix keeps: one pass is enough.
        bad = ~allowed & packed_mask & (inside_to_begin[tags] != tags)
        if bad.any():
            logger.warning_once(
                "Some gold tag sequences are not valid IOB2 (I-X after O, another type or the start); "
                "treating those I-X as B-X for the CRF loss."
            )
            tags = torch.where(bad, inside_to_begin[tags], tags)
        return tags

    def crf_scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The CRF's effective ``(start, transitions, end)`` scores in float32, IOB2 mask applied.

        Forbidden entries are `IMPOSSIBLE_SCORE` whatever the stored parameters hold, and get no
        gradient (masked_fill), so constraints are never learned.
        """
        start = self.crf.start_transitions.float()
        trans = self.crf.transitions.float()
        end = self.crf.end_transitions.float()
        if self.config.use_bio_constraints:
            start_ok, trans_ok, end_ok, _ = self._allowed(start.device)
            start = start.masked_fill(~start_ok, IMPOSSIBLE_SCORE)
            trans = trans.masked_fill(~trans_ok, IMPOSSIBLE_SCORE)
            end = end.masked_fill(~end_ok, IMPOSSIBLE_SCORE)
        return start, trans, end

    def parameter_groups(self, encoder_lr: float, head_lr: float | None = None, weight_decay: float = 0.0) -> list[dict]:
        """AdamW-ready parameter groups: the encoder at `encoder_lr`, the emission layer and CRF at
        `head_lr` (default: `encoder_lr`). No weight decay on biases, norm weights and CRF scores.

        ``torch.optim.AdamW(model.parameter_groups(5e-5, 1e-3, 0.01))``
        """
        head_lr = encoder_lr if head_lr is None else head_lr
        no_decay = set()
        for module in self.modules():
            if isinstance(module, (nn.LayerNorm, CRF)) or "norm" in type(module).__name__.lower():
                no_decay.update(id(p) for p in module.parameters(recurse=False))
        groups = {}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            in_head = not name.startswith(self.base_model_prefix + ".")
            decays = weight_decay > 0 and id(param) not in no_decay and not name.endswith("bias")
            groups.setdefault((in_head, decays), []).append(param)
        return [
            {"params": groups[key], "lr": head_lr if key[0] else encoder_lr, "weight_decay": weight_decay if key[1] else 0.0}
            for key in [(False, True), (False, False), (True, True), (True, False)]
            if key in groups
        ]

    # -- decode positions and path-consistent logits ----------------------------------------

    def _subword_kinds_of(self, input_ids, batch: int, seq_len: int, device) -> torch.Tensor:
        """`subword_kinds` of each input token (all WORD_START without `input_ids` or without a table)."""
        if input_ids is None:
            return torch.full((batch, seq_len), WORD_START, dtype=torch.int8, device=device)
        table = self.subword_kinds
        return table[input_ids.clamp(0, table.numel() - 1)].masked_fill(input_ids >= table.numel(), WORD_START)

    def _path_logits(self, decoded, marginals, positions, continuation) -> torch.Tensor:
        """Log-probabilities whose argmax is the decoded path (see `CRFTokenClassifierOutput.logits`)."""
        num_labels = self.num_labels
        tags = decoded.clamp(min=0)
        probabilities = _with_argmax(marginals, tags, positions, num_labels)
        # A continuation subword takes the probabilities of the last decoded position before it
        # (its word's first subword), with each B-X folded into I-X; its tag is the word's, B-X as I-X.
        seq_index = torch.arange(positions.size(1), device=positions.device).expand_as(positions)
        word_position = torch.where(positions, seq_index, -1).cummax(dim=1).values
        continuation = continuation & (word_position >= 0)
        if continuation.any():
            begin_to_inside = self._begin_to_inside(probabilities.device)
            word_position = word_position.clamp(min=0)
            word_probabilities = probabilities.gather(1, word_position[..., None].expand(-1, -1, num_labels))
            folded = torch.zeros_like(word_probabilities).index_add_(2, begin_to_inside, word_probabilities)
            folded = _with_argmax(folded, begin_to_inside[tags.gather(1, word_position)], continuation, num_labels)
            probabilities = torch.where(continuation[..., None], folded, probabilities)
        logits = probabilities.clamp(min=torch.finfo(probabilities.dtype).tiny).log()
        return torch.where((positions | continuation)[..., None], logits, 0.0)

    def _begin_to_inside(self, device) -> torch.Tensor:
        key = ("begin_to_inside", device)
        if key not in self._allowed_cache:
            self._allowed_cache[key] = _begin_to_inside(self.config.id2label).to(device)
        return self._allowed_cache[key]

    # -- forward -----------------------------------------------------------------------------

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        label_mask: torch.Tensor | None = None,
        return_marginals: bool = False,
        inputs_embeds: torch.FloatTensor | None = None,
        **kwargs,
    ) -> CRFTokenClassifierOutput:
        r"""
        Args:
            input_ids, attention_mask, token_type_ids, inputs_embeds: as for the encoder
                (`token_type_ids` is dropped for encoders that take none, e.g. DistilBERT).
            labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
                Tag ids; -100 marks positions without a tag. The CRF is trained (and decodes)
                over the positions with a tag, packed to the left.
            label_mask (`torch.BoolTensor` of shape `(batch_size, sequence_length)`, *optional*):
                Positions to decode when no labels are given: the first subword of each word
                (or every subword of a model trained with `label_alignment="all_subwords"`).
                Without labels and label_mask the model finds them from `input_ids` with its
                token table (`subword_kinds`, see `set_subword_kinds`); a model without the table
                decodes every attended token.
            return_marginals (`bool`, defaults to `False`):
                Also return the CRF marginal probabilities (forward-backward) as `marginals`.

        Returns: [`CRFTokenClassifierOutput`]. The Viterbi path (`decoded_tags`) and the
        path-consistent `logits` are computed unless the model is training with labels.

        Trainer note: `label_mask` contains "label", so set `TrainingArguments(label_names=["labels"])`;
        `EvalPrediction.predictions` then starts with `logits`, whose argmax is the decoded path.
        """
        return_dict = kwargs.pop("return_dict", None)
        kwargs.pop("num_items_in_batch", None)
        encoder_inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "inputs_embeds": inputs_embeds}
        if token_type_ids is not None and self._encoder_takes_token_type_ids:
            encoder_inputs["token_type_ids"] = token_type_ids
        outputs = self.encoder(**encoder_inputs, return_dict=True, **kwargs)
        emissions = self.classifier(self.dropout(outputs[0]))

        batch, seq_len = emissions.shape[:2]
        kinds = self._subword_kinds_of(input_ids, batch, seq_len, emissions.device)
        attended = (
            attention_mask.bool() if attention_mask is not None
            else torch.ones(batch, seq_len, dtype=torch.bool, device=emissions.device)
        )
        if labels is not None:
            positions = (labels != -100) & attended
        elif label_mask is not None:
            positions = label_mask.bool() & attended
        else:
            positions = attended & (kinds != CONTINUATION) & (kinds != SPECIAL)

        loss = decoded = marginals = None
        index, packed_mask = pack_positions(positions)
        # The CRF runs in float32 even under bf16/fp16 autocast.
        with torch.autocast(device_type=emissions.device.type, enabled=False):
            packed = emissions.float().gather(1, index[:, :, None].expand(-1, -1, self.num_labels))
            start, trans, end = self.crf_scores()
            if labels is not None:
                loss = packed.sum() * 0.0  # rows without a tag add 0 (and backward still works)
                rows = packed_mask[:, 0] if packed_mask.size(1) else packed_mask.new_zeros(batch)
                if rows.any():  # pytorch-crf needs the first step on in every row it sees
                    tags = labels.gather(1, index).masked_fill(~packed_mask, 0)
                    if self.config.use_bio_constraints:
                        tags = self._repair_gold_tags(tags, packed_mask)
                    # pytorch-crf's NLL with the masked scores swapped in (gradients reach the parameters).
                    llh = torch.func.functional_call(
                        self.crf,
                        {"start_transitions": start, "transitions": trans, "end_transitions": end},
                        (packed[rows], tags[rows], packed_mask[rows]),
                        {"reduction": "sum"},
                    )
                    loss = loss - llh / batch
            # Empty rows are harmless below: their junk path / zero marginals are masked out.
            crf_inputs = (packed.detach(), packed_mask, start.detach(), trans.detach(), end.detach())
            # Viterbi unless training with labels (the Trainer's eval/predict run in eval mode).
            logits = emissions
            if not (self.training and labels is not None):
                decoded = positions.new_full((batch, seq_len), -100, dtype=torch.long)
                marginals = packed.new_zeros(batch, seq_len, self.num_labels)
                if packed.size(1):
                    decoded.scatter_(1, index, crf_viterbi(*crf_inputs).masked_fill(~packed_mask, -100))
                    marginals.scatter_(1, index[:, :, None].expand_as(packed), crf_marginals(*crf_inputs))
                continuation = attended & ~positions & (kinds != SPECIAL)
                logits = self._path_logits(decoded, marginals, positions, continuation)
            elif return_marginals:
                marginals = packed.new_zeros(batch, seq_len, self.num_labels)
                if packed.size(1):
                    marginals.scatter_(1, index[:, :, None].expand_as(packed), crf_marginals(*crf_inputs))

        output = CRFTokenClassifierOutput(
            loss=loss,
            logits=logits,
            emissions=emissions,
            decoded_tags=decoded,
            marginals=marginals if return_marginals else None,
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
        )
        return output.to_tuple() if return_dict is False else output


# ---------------------------------------------------------------------------------------------
# Registration: Auto classes in this process, auto_map + this file on save_pretrained
# ---------------------------------------------------------------------------------------------

if CRFTokenClassificationConfig.model_type not in CONFIG_MAPPING:
    # The first definition wins: a copy loaded later with trust_remote_code does not replace it.
    AutoConfig.register(CRFTokenClassificationConfig.model_type, CRFTokenClassificationConfig)
    AutoModelForTokenClassification.register(CRFTokenClassificationConfig, CRFForTokenClassification)
CRFTokenClassificationConfig.register_for_auto_class()
CRFForTokenClassification.register_for_auto_class("AutoModelForTokenClassification")
