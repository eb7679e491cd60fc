"""clinical_ner_crf/onnx_backend.py: the CRF decoded in numpy gives modeling_crf's paths and marginals; an export
folder is read from a local folder or from the Hub repository it was uploaded to (offline, from a local Hub cache)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import modeling_crf
from clinical_ner_crf import onnx_backend
from clinical_ner_crf.files import ONNX_FILE, ONNX_INT8_FILE
from clinical_ner_crf.note_annotator import NoteAnnotator
from conftest import command
from test_annotate_notes import HUB_COMMIT, cache_as_hub_download, train_tiny_crf

export_onnx = command("export_onnx")  # the command, called in-process as from its command line

REPO_ID = "someone/clinical-ner-onnx"
TEXTS = {
    "med": "1. Metoprolol tartrate 25 mg tablet PO BID for hypertension.",
    "course": "Vancomycin 1 g IV q12h for MRSA bacteremia, furosemide 40 mg PO daily for edema.",
}


@pytest.mark.parametrize("spread", [1.0, 2000.0])  # 2000: the probability-space pass underflows (log-space redo)
def test_numpy_crf_matches_modeling_crf(spread):
    labels = ["O", "B-Drug", "I-Drug", "B-Dose", "I-Dose"]
    generator = torch.Generator().manual_seed(0)
    emissions = torch.randn(4, 11, len(labels), generator=generator) * spread
    positions = torch.rand(4, 11, generator=generator) > 0.3
    positions[2] = False  # a row with nothing to decode
    start_ok, trans_ok, end_ok = modeling_crf.bio_transition_mask(labels)
    start = torch.randn(len(labels), generator=generator).masked_fill(~start_ok, modeling_crf.IMPOSSIBLE_SCORE)
    trans = torch.randn(len(labels), len(labels), generator=generator).masked_fill(~trans_ok,
                                                                                  modeling_crf.IMPOSSIBLE_SCORE)
    end = torch.randn(len(labels), generator=generator)
    index, packed_mask = modeling_crf.pack_positions(positions)
    packed = emissions.gather(1, index[:, :, None].expand(-1, -1, len(labels)))
    path = modeling_crf.crf_viterbi(packed, packed_mask, start, trans, end).masked_fill(~packed_mask, -100)
    marginals = modeling_crf.crf_marginals(packed, packed_mask, start, trans, end)
    expected_tags = torch.full((4, 11), -100, dtype=torch.long).scatter_(1, index, path)
    expected_marginals = torch.zeros(4, 11, len(labels)).scatter_(1, index[:, :, None].expand_as(packed), marginals)
    expected_conf = expected_marginals.gather(-1, expected_tags.clamp(min=0)[..., None])[..., 0].clamp(0, 1)

    tags, confidences = onnx_backend.crf_decode(emissions.numpy(), positions.numpy(), start.numpy(), trans.numpy(),
                                                end.numpy())
    assert tags.tolist() == expected_tags.tolist()
    assert np.allclose(confidences, expected_conf.numpy(), atol=1e-5)
    assert np.isfinite(confidences).all()


# ---------------------------------------------------------------------------------------------
# A Hub id: the export folder uploaded there, read through the local Hub cache
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    """The tiny trained CRF of test_annotate_notes exported to ONNX (fp32)."""
    root = tmp_path_factory.mktemp("onnx")
    model = train_tiny_crf(root / "model")
    assert export_onnx.main(["--model_name_or_path", str(model), "--output_dir", str(root / "export")]) == 0
    return root / "export"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hub cache of this test's own, as HF_HUB_CACHE would name it (offline: conftest)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_a_hub_id_predicts_what_its_export_folder_predicts(onnx_dir, hub_cache):
    """NoteAnnotator.from_pretrained(HUB_ID, backend="onnx") reads the snapshot of the repository the folder was
    uploaded to (from the cache, offline) and predicts exactly what the folder does: entities, word tags, confidences.
    The revision is passed on: the cached commit loads, a revision not in the cache is one line naming it."""
    snapshot = cache_as_hub_download(onnx_dir, hub_cache, REPO_ID)
    from_hub = NoteAnnotator.from_pretrained(REPO_ID, backend="onnx")
    from_folder = NoteAnnotator.from_pretrained(str(onnx_dir), backend="onnx")
    assert from_hub.model.path == snapshot and from_folder.model.path == onnx_dir
    predicted = from_hub.predict(TEXTS)
    assert predicted == from_folder.predict(TEXTS)
    assert sum(len(note.entities) for note in predicted.values()) >= 6, "the tiny model finds entities"

    assert NoteAnnotator.from_pretrained(REPO_ID, backend="onnx", revision=HUB_COMMIT).model.path == snapshot
    with pytest.raises(onnx_backend.ExportFolderError) as caught:
        NoteAnnotator.from_pretrained(REPO_ID, backend="onnx", revision="v2")
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{REPO_ID} at revision v2 (a Hub repository): {ONNX_FILE} ")
    assert "not all in the local cache and HF_HUB_OFFLINE=1 forbids downloading them" in message


def test_a_hub_download_fetches_what_the_backend_reads_and_only_the_graph_asked_for(onnx_dir, tmp_path, monkeypatch):
    """Of an uploaded export folder (a model folder's files beside it too), snapshot_download is asked for the graph
    asked for and not the other one, the config, the CRF's scores, the export and quantization records and the
    tokenizer, at the revision and with the token given."""
    import huggingface_hub
    from huggingface_hub.utils import filter_repo_objects

    uploaded = ["model.onnx", "model.int8.onnx", "config.json", "crf.json", "onnx_export.json", "quantization.json",
                "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "spiece.model",
                "README.md", "model.safetensors", "modeling_crf.py", "predictions.jsonl"]
    read = {"config.json", "crf.json", "onnx_export.json", "quantization.json", "tokenizer.json",
            "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "spiece.model"}
    snapshot = tmp_path / "snapshot"
    shutil.copytree(onnx_dir, snapshot)
    shutil.copy2(snapshot / ONNX_FILE, snapshot / ONNX_INT8_FILE)  # a file by that name is all export_folder checks
    calls = []

    def snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    for graph in (ONNX_FILE, ONNX_INT8_FILE):
        assert onnx_backend.export_folder(REPO_ID, graph, revision="v1", token="hf_secret") == snapshot
        repo_id, kwargs = calls[-1]
        assert (repo_id, kwargs["revision"], kwargs["token"]) == (REPO_ID, "v1", "hf_secret")
        assert set(filter_repo_objects(uploaded, allow_patterns=kwargs["allow_patterns"])) == read | {graph}
    # A local folder, or a missing one that reads as a path, never asks the Hub.
    assert onnx_backend.export_folder(onnx_dir) == onnx_dir
    assert onnx_backend.export_folder("./no_such_export") == Path("./no_such_export") and len(calls) == 2
