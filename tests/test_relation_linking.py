"""clinical_ner_crf/relation_linking.py: the relation model or the nearest-drug rule at inference, chosen once from the model's config."""


import pytest

from clinical_ner_crf.note_annotator import NoteAnnotator
from clinical_ner_crf.relation_linking import mentions_of
from conftest import command
from test_annotate_notes import crf_dir, relation_models  # noqa: F401 (fixtures)

annotate_notes = command("annotate_notes")
run_re = command("run_re")


def test_note_annotator_relations_choice(crf_dir, relation_models, monkeypatch):
    """The Python API makes the same choice (choose_relations), and the linker builds the model's input
    as training did (its input features)."""
    from clinical_ner_crf.relation_linking import RelationLinker, RuleLinker, choose_relations
    from clinical_ner_crf.command_line import UsageError
    from clinical_ner_crf.relations import DEFAULT_SENTENCE_WINDOW, nearest_drug_rule

    text = "Metoprolol 25 mg PO BID and lisinopril 10 mg PO daily. Aspirin 81 mg PO daily."
    annotator = NoteAnnotator.from_pretrained(str(crf_dir), device="cpu",
                                              relation_model_name_or_path=str(relation_models["rule"]))
    assert isinstance(annotator.relation_linker, RuleLinker) and annotator.relation_linker.sentence_window == 1
    assert "the rule scored 0.8123" in annotator.relation_linker.choice_reason
    entities = annotator(text)
    mentions = mentions_of(entities)
    expected = {(c.type, mentions[c.attribute].id, mentions[c.drug].id) for c in nearest_drug_rule(text, mentions)}
    medications = annotator.medications(text)
    assert {(a["relation"], a["id"], r["id"]) for r in medications for a in r["attributes"]} == expected and expected
    assert {a["relation_confidence"] for r in medications for a in r["attributes"]} == {1.0}

    # rule: no relation model needed (the default window), or the relation model's window without its weights.
    linker = NoteAnnotator.from_pretrained(str(crf_dir), device="cpu", relations="rule").relation_linker
    assert isinstance(linker, RuleLinker) and linker.sentence_window == DEFAULT_SENTENCE_WINDOW
    assert choose_relations("rule", str(relation_models["window0"])).sentence_window == 0
    assert choose_relations("auto", str(relation_models["window0"])).by == "rule"
    assert choose_relations("auto").by is None  # no relation model: no relations, as before

    # model: the relation model, whatever won; its input features reach its input.
    annotator = NoteAnnotator.from_pretrained(str(crf_dir), device="cpu", relations="model",
                                              relation_model_name_or_path=str(relation_models["rule"]))
    linker = annotator.relation_linker
    assert isinstance(linker, RelationLinker) and linker.input_features == ("rule", "between")
    seen = []
    real = linker.probabilities
    monkeypatch.setattr(linker, "probabilities", lambda inputs: seen.extend(inputs) or real(inputs))
    assert annotator.medications(text)
    assert seen and all(item.split(" ")[0] in ("[rule]", "[not-rule]") and item.split(" ")[1].startswith("[between-")
                        for item in seen)

    # Requests that cannot be met, before anything loads.
    with pytest.raises(UsageError, match="--relations model needs"):
        NoteAnnotator.from_pretrained(str(crf_dir), device="cpu", relations="model")
    with pytest.raises(UsageError, match="--link_threshold is for the relation model"):
        choose_relations("rule", str(relation_models["model"]), link_threshold=0.4)
    with pytest.raises(UsageError, match="auto chose the nearest-drug rule"):
        choose_relations("auto", str(relation_models["rule"]), link_threshold=0.4)
    assert choose_relations("auto", str(relation_models["model"]), link_threshold=0.4).by == "model"
    with pytest.raises(UsageError, match="--relations must be one of"):
        choose_relations("nearest")
    with pytest.raises(ValueError, match="not a run_re.py relation model"):
        choose_relations("rule", str(crf_dir))


def test_relation_linker_refuses_a_model_without_its_feature_tokens(crf_dir, relation_models, tmp_path):
    """A config that lists input features needs their tokens in the tokenizer (run_re.py adds them)."""
    from transformers import AutoModelForSequenceClassification

    from clinical_ner_crf.relation_linking import RelationLinker
    from clinical_ner_crf.relations import MARKER_TOKENS
    from clinical_ner_crf.windows import load_tokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(relation_models["rule"]))
    markers_only = load_tokenizer(str(crf_dir))
    markers_only.add_special_tokens({"additional_special_tokens": list(MARKER_TOKENS)},
                                    replace_extra_special_tokens=False)
    with pytest.raises(ValueError, match="6 tokens of its input features"):
        RelationLinker(model, markers_only)
    model.config.relation_input_features = []  # an earlier version's model: markers only, no features
    assert RelationLinker(model, markers_only).input_features == ()
    model.config.relation_input_features = ["rule", "distance"]
    with pytest.raises(ValueError, match="does not know"):
        RelationLinker(model, markers_only)


def test_the_relation_model_on_notes_with_no_attribute_drug_pair(crf_dir, relation_models):
    """A note with no drug, or no attribute (most of a clinical note): no links and no medications, not an
    error (an empty batch went to the tokenizer)."""
    annotator = NoteAnnotator.from_pretrained(str(crf_dir), device="cpu", relations="model",
                                              relation_model_name_or_path=str(relation_models["model"]))
    assert annotator.relation_linker.probabilities([]) == []
    assert annotator.medications("Patient seen and examined.") == []
    assert annotator.medications(["Patient seen and examined.", "No known allergies."]) == [[], []]
