"""CRFForTokenClassification: exact CRF math, IOB2 constraints, training, Hub round trip, pipeline."""

import itertools
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch

from clinical_ner_crf.windows import copy_pipeline_files, pipeline_config_entry
from conftest import build_wordpiece_tokenizer, tiny_encoder_config
from modeling_crf import (
    IMPOSSIBLE_SCORE, CRFForTokenClassification, CRFTokenClassificationConfig, bio_transition_mask, crf_log_marginals,
    crf_log_partition, crf_marginals, crf_viterbi,
)

LABELS = ["O", "B-Drug", "I-Drug", "B-Dose", "I-Dose"]
O, B_DRUG, I_DRUG, B_DOSE, I_DOSE = range(5)
SENTENCE = "Aspirin 81 mg PO daily, metoprolol tartrate."


def make_model(architecture="bert", labels=LABELS, seed=0, **config_kwargs):
    torch.manual_seed(seed)
    config = CRFTokenClassificationConfig(
        encoder_config=tiny_encoder_config(architecture), id2label=dict(enumerate(labels)), **config_kwargs
    )
    return CRFForTokenClassification(config).eval()


def randomize_crf(model, seed=1):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in (model.crf.start_transitions, model.crf.transitions, model.crf.end_transitions):
            param.copy_(torch.randn(param.shape, generator=generator))


def brute_force(emissions, start, transitions, end):
    """All paths of one row: (paths [N, L], scores [N]) in float64."""
    steps, num_tags = emissions.shape
    paths = torch.tensor(list(itertools.product(range(num_tags), repeat=steps)))
    scores = (
        start[paths[:, 0]]
        + emissions[torch.arange(steps), paths].sum(1)
        + transitions[paths[:, :-1], paths[:, 1:]].sum(1)
        + end[paths[:, -1]]
    )
    return paths, scores


def is_valid_iob2(tags, labels):
    previous = "O"
    for tag in (labels[t] for t in tags):
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def handcrafted(model, bias, transitions=()):
    """Constant emissions (zero classifier weights + bias) and hand-set transition scores."""
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor(bias))
        model.crf.start_transitions.zero_()
        model.crf.end_transitions.zero_()
        model.crf.transitions.zero_()
        for (i, j), value in transitions:
            model.crf.transitions[i, j] = value
    return model


def regex_words(text):
    return [(m.group(), m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]


# --------------------------------------------------------------------------------------------
# IOB2 constraints and config
# --------------------------------------------------------------------------------------------


def test_bio_transition_mask():
    start, trans, end = bio_transition_mask({i: label for i, label in enumerate(LABELS)})
    assert start.tolist() == [True, True, False, True, False]
    assert end.all()
    # to I-Drug: only from B-Drug / I-Drug; to I-Dose: only from B-Dose / I-Dose; B-* and O from anywhere.
    assert trans[:, I_DRUG].tolist() == [False, True, True, False, False]
    assert trans[:, I_DOSE].tolist() == [False, False, False, True, True]
    assert trans[:, [O, B_DRUG, B_DOSE]].all()
    assert bio_transition_mask(LABELS)[1].equal(trans)  # a list of names works too


def test_config_validates_labels_and_round_trips(tmp_path):
    with pytest.raises(ValueError, match="IOB2"):
        CRFTokenClassificationConfig(id2label={0: "O", 1: "Drug"})
    CRFTokenClassificationConfig(id2label={0: "O", 1: "Drug"}, use_bio_constraints=False)  # allowed without constraints
    with pytest.raises(ValueError, match="id2label"):
        CRFForTokenClassification(CRFTokenClassificationConfig(encoder_config=tiny_encoder_config()))
    config = CRFTokenClassificationConfig(encoder_config=tiny_encoder_config("distilbert"), id2label=dict(enumerate(LABELS)))
    assert config.classifier_dropout == 0.2 and config.use_bio_constraints and config.num_labels == 5
    assert config.label2id == {label: i for i, label in enumerate(LABELS)}
    config.save_pretrained(tmp_path)
    loaded = CRFTokenClassificationConfig.from_pretrained(tmp_path)
    assert loaded.encoder_config.model_type == "distilbert" and loaded.encoder_config.dim == 32
    assert loaded.id2label == config.id2label
    assert not hasattr(loaded, "custom_pipelines")  # only a model saved with its pipeline files names one
    config.custom_pipelines = pipeline_config_entry()
    config.save_pretrained(tmp_path)
    assert CRFTokenClassificationConfig.from_pretrained(tmp_path).custom_pipelines == pipeline_config_entry()


# --------------------------------------------------------------------------------------------
# Exact CRF math against brute-force enumeration
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("constrained", [True, False])
def test_loss_viterbi_marginals_equal_brute_force(constrained):
    model = make_model(use_bio_constraints=constrained)
    randomize_crf(model)
    batch, seq_len = 4, 8
    input_ids = torch.randint(5, 300, (batch, seq_len))
    attention_mask = torch.ones(batch, seq_len, dtype=torch.long)
    attention_mask[3, 5:] = 0
    labels = torch.full((batch, seq_len), -100)
    labels[0, [1, 2, 4, 6]] = torch.tensor([B_DRUG, I_DRUG, O, B_DOSE])  # first subwords with gaps
    labels[1, 1] = O  # a single word
    # row 2: no labelled position at all
    labels[3, 1:5] = torch.tensor([B_DOSE, I_DOSE, I_DOSE, O])  # padded row
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, return_marginals=True)

    start, trans, end = (x.detach().double() for x in model.crf_scores())
    expected_loss = 0.0
    for b in range(batch):
        positions = labels[b] != -100
        if not positions.any():
            assert (out.decoded_tags[b] == -100).all() and (out.marginals[b] == 0).all()
            continue
        paths, scores = brute_force(out.emissions[b, positions].double(), start, trans, end)
        log_z = torch.logsumexp(scores, 0)
        gold = (paths == labels[b, positions]).all(1)
        expected_loss += float(log_z - scores[gold][0])
        assert out.decoded_tags[b, positions].tolist() == paths[scores.argmax()].tolist()
        assert (out.decoded_tags[b, ~positions] == -100).all()
        probs = (scores - log_z).exp()
        brute_marginals = torch.stack([
            torch.stack([probs[paths[:, t] == c].sum() for c in range(len(LABELS))]) for t in range(int(positions.sum()))
        ])
        torch.testing.assert_close(out.marginals[b, positions].double(), brute_marginals, atol=1e-5, rtol=1e-4)
        assert (out.marginals[b, ~positions] == 0).all()
    assert out.loss.dtype == torch.float32
    torch.testing.assert_close(out.loss.double(), torch.tensor(expected_loss / batch, dtype=torch.float64), rtol=1e-5, atol=1e-4)


def test_batched_algorithms_agree_with_pytorch_crf():
    model = make_model(use_bio_constraints=False)
    randomize_crf(model)
    torch.manual_seed(3)
    emissions = torch.randn(6, 7, len(LABELS))
    lengths = torch.tensor([7, 1, 3, 5, 2, 7])
    mask = torch.arange(7)[None] < lengths[:, None]
    start, trans, end = model.crf_scores()
    path = crf_viterbi(emissions, mask, start, trans, end)
    for row, expected in enumerate(model.crf.decode(emissions, mask)):
        assert path[row, : lengths[row]].tolist() == expected
    normalizer = model.crf._compute_normalizer(emissions.transpose(0, 1), mask.transpose(0, 1))
    torch.testing.assert_close(crf_log_partition(emissions, mask, start, trans, end), normalizer)
    marginals = crf_marginals(emissions, mask, start, trans, end)
    torch.testing.assert_close(marginals.sum(-1), mask.float())
    torch.testing.assert_close(marginals, crf_log_marginals(emissions, mask, start, trans, end), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_probability_space_marginals_match_log_space_under_constraints(scale):
    model = make_model()  # IOB2 constraints: forbidden transitions are exactly 0 in probability space
    randomize_crf(model, seed=4)
    torch.manual_seed(5)
    emissions = torch.randn(5, 9, len(LABELS)) * scale
    mask = torch.arange(9)[None] < torch.tensor([9, 4, 1, 0, 6])[:, None]
    scores = model.crf_scores()
    marginals = crf_marginals(emissions, mask, *scores)
    torch.testing.assert_close(marginals, crf_log_marginals(emissions, mask, *scores), atol=1e-5, rtol=1e-4)
    assert (marginals[3] == 0).all()  # an empty row


def test_marginals_fall_back_to_log_space_when_a_step_underflows():
    model = make_model()
    start, trans, end = model.crf_scores()
    # Step 0 all but says O, step 1 all but says I-Drug, and O -> I-Drug is forbidden: in
    # probability space every tag of step 1 underflows to 0 (0/0), in log space the
    # B-Drug I-Drug path still wins.
    emissions = torch.full((1, 2, len(LABELS)), -200.0)
    emissions[0, 0, LABELS.index("O")] = 0.0
    emissions[0, 1, LABELS.index("I-Drug")] = 0.0
    mask = torch.ones(1, 2, dtype=torch.bool)
    marginals = crf_marginals(emissions, mask, start, trans, end)
    assert torch.isfinite(marginals).all()
    torch.testing.assert_close(marginals, crf_log_marginals(emissions, mask, start, trans, end))
    torch.testing.assert_close(marginals.sum(-1), torch.ones(1, 2))


def test_constrained_paths_are_always_valid_iob2():
    labels = ["O"] + [f"{p}-{t}" for t in ("Drug", "Reason", "Route", "Strength", "Form") for p in "BI"]
    model = make_model(labels=labels)
    randomize_crf(model, seed=5)
    inside = torch.tensor([label.startswith("I-") for label in labels])
    with torch.no_grad():  # stored scores that favour forbidden moves are overridden by the mask
        model.crf.transitions.masked_fill_(~bio_transition_mask(labels)[1], 5.0)
        model.crf.start_transitions.masked_fill_(inside, 5.0)
    torch.manual_seed(4)
    emissions = torch.randn(64, 12, len(labels)) * 3 + inside * 4.0  # argmax would be mostly I-X
    lengths = torch.randint(1, 13, (64,))
    mask = torch.arange(12)[None] < lengths[:, None]
    path = crf_viterbi(emissions, mask, *model.crf_scores())
    assert all(is_valid_iob2(path[b, : lengths[b]].tolist(), labels) for b in range(64))
    assert not all(is_valid_iob2(emissions[b, : lengths[b]].argmax(-1).tolist(), labels) for b in range(64))
    # and through forward
    handcrafted(model, [0.0] + [0.5 if not i else 1.0 for i in inside[1:].tolist()])
    out = model(input_ids=torch.randint(5, 300, (3, 9)))
    assert all(is_valid_iob2(row.tolist(), labels) for row in out.decoded_tags)


# --------------------------------------------------------------------------------------------
# Training behaviour
# --------------------------------------------------------------------------------------------


def test_gradients_reach_everything_and_constraints_stay_fixed():
    model = make_model("distilbert").train()
    input_ids = torch.randint(5, 300, (3, 10))
    labels = torch.full((3, 10), -100)
    labels[:, 1:7] = torch.tensor([B_DRUG, I_DRUG, O, B_DOSE, I_DOSE, O])
    out = model(input_ids=input_ids, labels=labels)
    assert out.decoded_tags is None and out.marginals is None  # no Viterbi while training
    out.loss.backward()
    start_ok, trans_ok, _ = bio_transition_mask(LABELS)
    assert model.encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert model.encoder.transformer.layer[0].attention.q_lin.weight.grad.abs().sum() > 0
    assert model.classifier.weight.grad.abs().sum() > 0
    assert model.crf.transitions.grad[trans_ok].abs().sum() > 0
    assert (model.crf.transitions.grad[~trans_ok] == 0).all()
    assert (model.crf.start_transitions.grad[~start_ok] == 0).all()

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameter_groups(1e-3, 1e-2, weight_decay=0.1))
    optimizer.step()
    assert not torch.equal(model.crf.transitions[trans_ok], before["crf.transitions"][trans_ok])
    assert (model.crf.transitions[~trans_ok] == IMPOSSIBLE_SCORE).all()
    assert (model.crf.start_transitions[~start_ok] == IMPOSSIBLE_SCORE).all()
    assert not torch.equal(model.classifier.weight, before["classifier.weight"])
    # Even an optimizer that decays everything cannot move the effective forbidden scores.
    torch.optim.AdamW(model.parameters(), lr=1.0, weight_decay=0.5).step()
    _, trans, _ = model.crf_scores()
    assert (trans[~trans_ok] == IMPOSSIBLE_SCORE).all()


def test_parameter_groups():
    model = make_model("distilbert")
    groups = model.parameter_groups(encoder_lr=5e-5, head_lr=1e-3, weight_decay=0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    seen = [names[id(p)] for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(names.values())  # each parameter exactly once
    setting = {names[id(p)]: (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert setting["classifier.weight"] == (1e-3, 0.01)
    assert setting["classifier.bias"] == (1e-3, 0.0)
    assert all(setting[f"crf.{n}"] == (1e-3, 0.0) for n in ("transitions", "start_transitions", "end_transitions"))
    assert setting["encoder.transformer.layer.0.ffn.lin1.weight"] == (5e-5, 0.01)
    assert setting["encoder.transformer.layer.0.sa_layer_norm.weight"] == (5e-5, 0.0)
    assert setting["encoder.embeddings.LayerNorm.weight"] == (5e-5, 0.0)
    assert setting["encoder.transformer.layer.0.ffn.lin1.bias"] == (5e-5, 0.0)


def test_decode_positions_label_mask_and_fallback():
    model = make_model("distilbert")
    input_ids = torch.randint(5, 300, (2, 6))
    attention_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    label_mask = torch.tensor([[0, 1, 0, 1, 1, 0], [0, 1, 1, 1, 0, 0]], dtype=torch.bool)
    # token_type_ids are dropped for DistilBERT, which has none.
    out = model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids),
                label_mask=label_mask)
    assert out.loss is None
    assert ((out.decoded_tags != -100) == (label_mask & attention_mask.bool())).all()
    start, trans, end = model.crf_scores()
    packed = out.emissions[0, label_mask[0]][None]
    assert out.decoded_tags[0, label_mask[0]].tolist() == crf_viterbi(packed, torch.ones(1, 3, dtype=torch.bool), start, trans, end)[0].tolist()
    # Without a label_mask or a token table (set_subword_kinds), every attended token decodes.
    fallback = model(input_ids=input_ids, attention_mask=attention_mask)
    assert ((fallback.decoded_tags != -100) == attention_mask.bool()).all()
    empty = model(input_ids=input_ids, label_mask=torch.zeros(2, 6, dtype=torch.bool), return_marginals=True)
    assert (empty.decoded_tags == -100).all() and (empty.marginals == 0).all()
    model.train()
    assert model(input_ids=input_ids, label_mask=label_mask).decoded_tags is not None  # no labels: still decodes
    empty_loss = model(input_ids=input_ids, labels=torch.full((2, 6), -100)).loss
    assert empty_loss.item() == 0.0
    empty_loss.backward()  # rows without a tag do not break backward


def test_invalid_gold_paths_are_repaired():
    model = make_model()
    input_ids = torch.randint(5, 300, (1, 6))
    fixed = torch.tensor([[-100, B_DRUG, I_DRUG, O, B_DOSE, -100]])
    broken = torch.tensor([[-100, I_DRUG, I_DRUG, O, I_DOSE, -100]])  # e.g. a window starting inside an entity
    torch.testing.assert_close(model(input_ids=input_ids, labels=broken).loss, model(input_ids=input_ids, labels=fixed).loss)
    assert model(input_ids=input_ids, labels=fixed).loss < 100


def test_bf16_autocast_gives_the_float32_path():
    model = make_model("bert")
    with torch.no_grad():
        model.classifier.weight.mul_(50.0)  # decisive emissions: bf16 rounding cannot flip a path
    input_ids = torch.randint(5, 300, (4, 12))
    labels = torch.randint(0, 5, (4, 12))
    labels[:, 0] = -100
    reference = model(input_ids=input_ids, labels=labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model(input_ids=input_ids, labels=labels, return_marginals=True)
    assert mixed.emissions.dtype == torch.bfloat16 and mixed.logits.dtype == torch.float32
    assert mixed.loss.dtype == torch.float32 and mixed.marginals.dtype == torch.float32
    assert torch.equal(mixed.decoded_tags, reference.decoded_tags)
    torch.testing.assert_close(mixed.loss, reference.loss, rtol=2e-2, atol=1e-2)


def test_from_encoder_pretrained_loads_encoder_without_pooler(tmp_path):
    from transformers import BertModel

    torch.manual_seed(0)
    encoder = BertModel(tiny_encoder_config("bert"))  # with its pooler, as on the Hub
    encoder.save_pretrained(tmp_path)
    model = CRFForTokenClassification.from_encoder_pretrained(
        str(tmp_path), id2label=dict(enumerate(LABELS)), classifier_dropout=0.1
    )
    assert model.config.classifier_dropout == 0.1 and model.config.label2id["I-Dose"] == I_DOSE
    assert getattr(model.encoder, "pooler", None) is None
    assert not any("pooler" in n for n, _ in model.named_parameters())
    torch.testing.assert_close(model.encoder.embeddings.word_embeddings.weight, encoder.embeddings.word_embeddings.weight)
    torch.testing.assert_close(model.encoder.encoder.layer[1].output.dense.weight, encoder.encoder.layer[1].output.dense.weight)
    out = model.eval()(input_ids=torch.randint(5, 300, (1, 5)))
    assert out.decoded_tags.shape == (1, 5)


@pytest.mark.parametrize("attn_implementation", [None, "eager"])
def test_from_encoder_pretrained_keeps_the_encoders_attention(tmp_path, attn_implementation):
    from transformers import AutoModel, BertModel

    BertModel(tiny_encoder_config("bert")).save_pretrained(tmp_path)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    expected = AutoModel.from_pretrained(str(tmp_path), **kwargs).config._attn_implementation
    model = CRFForTokenClassification.from_encoder_pretrained(str(tmp_path), id2label=dict(enumerate(LABELS)), **kwargs)
    # The attention layers read the encoder's own config: None would silently fall back to eager.
    assert expected == (attn_implementation or "sdpa")
    assert model.encoder.config._attn_implementation == expected
    assert model.config._attn_implementation == expected


def test_trainer_predict_returns_the_decoded_path(tmp_path):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    model = make_model("distilbert")
    assert model.accepts_loss_kwargs is False  # the Trainer keeps its own gradient-accumulation scaling
    rows = {"input_ids": torch.randint(5, 300, (4, 8)).tolist(), "labels": [[-100, 1, 2, 0, 3, 4, 0, -100]] * 4}
    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=3, use_cpu=True,
                             report_to=[], label_names=["labels"])
    result = Trainer(model=model, args=args).predict(Dataset.from_dict(rows))
    logits, emissions, decoded = result.predictions
    expected = model(input_ids=torch.tensor(rows["input_ids"]), labels=torch.tensor(rows["labels"])).decoded_tags
    assert logits.shape == emissions.shape == (4, 8, 5) and (decoded == expected.numpy()).all()
    # A stock compute_metrics (argmax of the logits, as in run_ner.py) sees the Viterbi path.
    positions = decoded != -100
    assert (logits.argmax(-1)[positions] == decoded[positions]).all()
    assert result.label_ids.shape == (4, 8) and "test_loss" in result.metrics


# --------------------------------------------------------------------------------------------
# Any caller gets the CRF's path: word starts from the token table, path-consistent logits
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    return build_wordpiece_tokenizer()


def first_subwords(encoding, row=0):
    word_ids = encoding.word_ids(row)
    return torch.tensor([w is not None and (t == 0 or word_ids[t - 1] != w) for t, w in enumerate(word_ids)])


def test_subword_kinds_give_the_first_subword_of_each_word(tokenizer):
    model = make_model("bert")
    randomize_crf(model)
    encoding = tokenizer(["Aspirin 81 mg PO daily, metoprolol tartrate and Zyxolimab."], return_tensors="pt")
    first = first_subwords(encoding)
    assert int(first.sum()) < len(first) - 2  # some words have several subwords
    with_mask = model(**encoding, label_mask=first[None], return_marginals=True)
    model.set_subword_kinds(tokenizer)
    kinds = model.subword_kinds[encoding["input_ids"][0]].tolist()
    assert kinds[0] == kinds[-1] == 2  # [CLS], [SEP]
    without_mask = model(**encoding, return_marginals=True)
    assert torch.equal(without_mask.decoded_tags, with_mask.decoded_tags)
    assert torch.equal(without_mask.marginals, with_mask.marginals)


def test_subword_kinds_are_saved_and_missing_ones_decode_everything(tmp_path, tokenizer):
    from safetensors.torch import load_file, save_file

    model = make_model("distilbert")
    model.set_subword_kinds(tokenizer)
    model.save_pretrained(tmp_path / "with")
    reloaded = CRFForTokenClassification.from_pretrained(tmp_path / "with")
    assert torch.equal(reloaded.subword_kinds, model.subword_kinds) and reloaded.subword_kinds.any()
    # A checkpoint saved before the table existed: all zeros, i.e. every attended token decodes.
    state = load_file(tmp_path / "with" / "model.safetensors")
    del state["subword_kinds"]
    model.save_pretrained(tmp_path / "without")
    save_file(state, tmp_path / "without" / "model.safetensors", metadata={"format": "pt"})
    old = CRFForTokenClassification.from_pretrained(tmp_path / "without")
    assert not old.subword_kinds.any()


@pytest.mark.parametrize("seed", range(4))
def test_logits_argmax_is_the_decoded_path_and_continuations_follow_their_word(tokenizer, seed):
    model = make_model("bert", seed=seed)
    randomize_crf(model, seed=seed)
    with torch.no_grad():
        model.classifier.weight.mul_(30.0)  # spread-out emissions: Viterbi and marginal argmax disagree sometimes
    model.set_subword_kinds(tokenizer)
    encoding = tokenizer([SENTENCE + " Zyxolimab glargine q12h.", "Heparin"], padding=True, return_tensors="pt")
    out = model(**encoding, return_marginals=True)
    for row in range(2):
        first = first_subwords(encoding, row)
        decoded, logits = out.decoded_tags[row], out.logits[row]
        assert ((decoded != -100) == first).all()
        assert torch.equal(logits.argmax(-1)[first], decoded[first])
        # softmax of the logits at the decoded tag is its CRF marginal
        tag_probability = logits.softmax(-1)[first].gather(1, decoded[first][:, None])[:, 0]
        torch.testing.assert_close(tag_probability, out.marginals[row][first].gather(1, decoded[first][:, None])[:, 0])
        word_ids = encoding.word_ids(row)
        tags = logits.argmax(-1).tolist()
        for t, word in enumerate(word_ids):
            if word is not None and not first[t]:  # a continuation subword: I-X of its word's type, or O
                word_tag = LABELS[tags[word_ids.index(word)]]
                assert LABELS[tags[t]] == ("O" if word_tag == "O" else "I-" + word_tag[2:])
        assert is_valid_iob2([tags[t] for t, w in enumerate(word_ids) if w is not None], LABELS)


def test_path_logits_when_marginals_disagree_with_the_path():
    """A word decoded O whose B-Dose + I-Dose marginals outweigh O: its continuation must still be O."""
    model = make_model("bert")
    #            O     B-Drug I-Drug B-Dose I-Dose
    marginals = torch.tensor([[[0.0] * 5,
                               [0.30, 0.10, 0.02, 0.28, 0.30],   # decoded O, though I-Dose ties it
                               [0.0] * 5,                        # continuation of that word
                               [0.10, 0.05, 0.05, 0.60, 0.20],   # decoded B-Dose, agrees
                               [0.0] * 5]])                      # continuation: I-Dose
    decoded = torch.tensor([[-100, O, -100, B_DOSE, -100]])
    positions = decoded != -100
    continuation = torch.tensor([[False, False, True, False, True]])
    logits = model._path_logits(decoded, marginals, positions, continuation)
    assert logits.argmax(-1)[0, 1:].tolist() == [O, O, B_DOSE, I_DOSE]
    probabilities = logits.softmax(-1)[0]
    assert probabilities[1, O] == pytest.approx(0.30) and probabilities[3, B_DOSE] == pytest.approx(0.60)
    assert probabilities[4, I_DOSE] == pytest.approx(0.80)  # B-Dose folded into I-Dose
    assert (logits[0, 0] == 0).all()  # neither decoded nor a continuation


def test_stock_pipeline_with_a_model_object_gets_the_crf_path(tokenizer):
    from transformers import pipeline

    # Emissions favour I-Dose (argmax: one invalid I-Dose run); B-Dose -> I-Dose is made too costly,
    # so the CRF's best path tags every word B-Drug.
    model = handcrafted(make_model("bert"), bias=[0.0, 0.5, 0.0, 0.0, 1.0], transitions=[((B_DOSE, I_DOSE), -100.0)])
    model.set_subword_kinds(tokenizer)
    words = pipeline("token-classification", model=model, tokenizer=tokenizer)(SENTENCE)
    tags = [w["entity"] for w in words]
    assert set(tags) <= {"B-Drug", "I-Drug"} and tags.count("B-Drug") == len(regex_words(SENTENCE))
    assert is_valid_iob2([LABELS.index(tag) for tag in tags], LABELS)
    entities = pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="simple")(SENTENCE)
    assert [(e["entity_group"], e["start"], e["end"]) for e in entities] == [
        ("Drug", start, end) for _, start, end in regex_words(SENTENCE)]


# --------------------------------------------------------------------------------------------
# Save -> load in a fresh process (trust_remote_code=True), pipeline from the saved directory
# --------------------------------------------------------------------------------------------

FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, sys
    import torch
    # A clean process: the project is not importable, only the copy saved beside the weights.
    for module in ("modeling_crf", "windows", "tagging"):
        assert importlib.util.find_spec(module) is None, sys.path
    from transformers import AutoModelForTokenClassification, AutoTokenizer, TokenClassificationPipeline, pipeline

    root = sys.argv[1]
    result = {}
    for arch in ("bert", "distilbert", "roberta"):
        model = AutoModelForTokenClassification.from_pretrained(f"{root}/{arch}", trust_remote_code=True).eval()
        inputs = torch.load(f"{root}/{arch}/inputs.pt")
        with torch.no_grad():
            out = model(**inputs, return_marginals=True)
        torch.save({"logits": out.logits, "emissions": out.emissions, "decoded_tags": out.decoded_tags, "marginals": out.marginals},
                   f"{root}/{arch}/reloaded.pt")
        result[arch] = type(model).__module__
    assert "modeling_crf" not in sys.modules  # only the copy saved beside the weights was used

    pipe = pipeline("token-classification", model=f"{root}/pipeline", trust_remote_code=True, aggregation_strategy="first")
    result["pipeline_class"] = type(pipe).__name__
    result["entities"] = pipe(sys.argv[2])
    # the CRF marginal of each word's tag at its first subword, straight from the model
    enc = pipe.tokenizer(sys.argv[2], return_tensors="pt")
    word_ids = enc.word_ids(0)
    first = torch.tensor([[w is not None and (t == 0 or word_ids[t - 1] != w) for t, w in enumerate(word_ids)]])
    with torch.no_grad():
        out = pipe.model(**enc, label_mask=first, return_marginals=True)
    tags = out.decoded_tags[0][first[0]]
    result["marginals"] = out.marginals[0][first[0]].gather(1, tags[:, None])[:, 0].tolist()
    stock = TokenClassificationPipeline(model=pipe.model, tokenizer=pipe.tokenizer, aggregation_strategy="first")
    result["stock_entities"] = [{k: e[k] for k in ("entity_group", "start", "end")} for e in stock(sys.argv[2])]
    result["argmax_of_emissions"] = [pipe.model.config.id2label[int(t)] for t in out.emissions[0][first[0]].argmax(-1)]
    pipe.model.save_pretrained(f"{root}/resaved")  # config.custom_pipelines is still JSON after pipeline()
    print(json.dumps(result))
    """
)


@pytest.fixture(scope="module")
def fresh_process(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("saved")
    inputs = tokenizer(["Aspirin 81 mg PO daily.", "Vancomycin 1 g IV q12h for MRSA bacteremia."],
                       padding=True, return_tensors="pt")
    first = torch.tensor([[w is not None and (t == 0 or ids[t - 1] != w) for t, w in enumerate(ids)]
                          for ids in (inputs.word_ids(0), inputs.word_ids(1))])
    inputs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"], "label_mask": first}
    references = {}
    for i, arch in enumerate(("bert", "distilbert", "roberta")):
        model = make_model(arch, seed=i)
        randomize_crf(model, seed=i)
        with torch.no_grad():
            references[arch] = model(**inputs, return_marginals=True)
        model.save_pretrained(root / arch)
        torch.save(inputs, root / arch / "inputs.pt")
    # Emissions favour I-Dose (argmax: one invalid I-Dose run); B-Dose -> I-Dose is made too costly,
    # so the CRF's best path tags every word B-Drug.
    model = handcrafted(make_model("distilbert"), bias=[0.0, 0.5, 0.0, 0.0, 1.0], transitions=[((B_DOSE, I_DOSE), -100.0)])
    model.set_subword_kinds(tokenizer)
    model.config.custom_pipelines = pipeline_config_entry()  # as run_ner_crf.py saves a CRF model
    model.save_pretrained(root / "pipeline")
    copy_pipeline_files(root / "pipeline")
    tokenizer.save_pretrained(root / "pipeline")
    script = root / "check.py"
    script.write_text(FRESH_PROCESS_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_MODULES_CACHE=str(root / "modules"))
    cwd = tmp_path_factory.mktemp("cwd")
    proc = subprocess.run([sys.executable, str(script), str(root), SENTENCE], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return root, references, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("arch", ["bert", "distilbert", "roberta"])
def test_save_load_in_fresh_process_gives_identical_outputs(fresh_process, arch):
    root, references, result = fresh_process
    assert result[arch].startswith("transformers_modules.")
    assert (root / arch / "modeling_crf.py").exists()
    config = json.loads((root / arch / "config.json").read_text())
    assert config["auto_map"]["AutoModelForTokenClassification"] == "modeling_crf.CRFForTokenClassification"
    reloaded = torch.load(root / arch / "reloaded.pt")
    assert torch.equal(reloaded["logits"], references[arch].logits)
    assert torch.equal(reloaded["emissions"], references[arch].emissions)
    assert torch.equal(reloaded["decoded_tags"], references[arch].decoded_tags)
    assert torch.equal(reloaded["marginals"], references[arch].marginals)


def test_pipeline_returns_crf_path_in_a_fresh_process(fresh_process):
    _, _, result = fresh_process
    assert result["pipeline_class"] == "NerPipeline"
    entities = result["entities"]
    assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in entities] == [
        ("Drug", word, start, end) for word, start, end in regex_words(SENTENCE)
    ]
    assert [e["score"] for e in entities] == pytest.approx(result["marginals"])
    # The argmax of the emissions says something else entirely; the stock pipeline on the loaded
    # model object reads the logits, which follow the CRF path.
    assert set(result["argmax_of_emissions"]) == {"I-Dose"}
    assert result["stock_entities"] == [{k: e[k] for k in ("entity_group", "start", "end")} for e in entities]
