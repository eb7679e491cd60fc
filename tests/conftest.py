"""Shared fixtures: tiny encoders and tokenizers built locally, fully offline."""

import importlib
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

# Offline before anything imports huggingface_hub: tests never reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
# One thread per process, in-process and in the commands tests start: `make test` runs two pytest workers on the 2
# cores of CI, and tiny models run fastest on one thread anyway (many times slower with two on a busy machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")


REPO_ROOT = Path(__file__).resolve().parent.parent
LIBRARY = "clinical_ner_crf"  # the folder of shared modules beside the commands
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
sys.path.insert(0, str(REPO_ROOT))


def command(name: str) -> SimpleNamespace:
    """A command (a top-level script), to call in-process as from its command line: its ``main`` (and ``parse_args``)
    and nothing else: everything else comes from the library, which commands never are. In-process saves a torch
    start-up per call; the tests that need a real process start one."""
    module = importlib.import_module(name)
    return SimpleNamespace(**{attribute: getattr(module, attribute) for attribute in ("main", "parse_args", "build_parser")
                              if hasattr(module, attribute)})


def assert_plain(obj):
    """Results hold plain Python numbers, never numpy scalars."""
    if isinstance(obj, dict):
        for value in obj.values():
            assert_plain(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            assert_plain(value)
    else:
        assert obj is None or type(obj) in (float, int, str, bool), type(obj)


# Enough clinical-style text that a WordPiece vocabulary covers the usual words.
_TOKENIZER_TEXT = """
Patient was started on aspirin 81 mg PO daily for chest pain and developed a rash.
Discharge Medications: 1. Metoprolol tartrate 25 mg tablet PO BID. 2. Lisinopril 10 mg
tablet by mouth once a day for 7 days. 3. Heparin 5000 units SC q8h. Vancomycin 1 g IV
q12h for MRSA bacteremia. Furosemide 40 mg PO daily for edema. Insulin glargine 20 units
subcutaneous at bedtime. Acetaminophen 650 mg PO Q6H PRN pain or fever. Hypotension
secondary to lisinopril. Nausea due to morphine. Capsule, solution, patch, inhaler,
cream, injection, suspension. Allergies: penicillin. Vitals: BP 120/80 HR 72.
"""


def build_wordpiece_tokenizer(texts=(_TOKENIZER_TEXT,), vocab_size=400, lowercase=False):
    """A BERT-style fast tokenizer built here (no download), with the project's own builder. It stands for an outside
    tokenizer (a Hub model's), so it is not marked as learned from a corpus (tests mark one when they need to)."""
    from clinical_ner_crf.tagging import tokenize_words
    from clinical_ner_crf.subwords import train_subword_tokenizer

    words = [[word for word, _, _ in tokenize_words(text)] for text in texts]
    return train_subword_tokenizer(words, vocab_size, min_frequency=1, lowercase=lowercase, from_corpus=False)


def tiny_encoder_config(architecture="bert", vocab_size=400, **overrides):
    """A 2-layer, 32-wide encoder config of the given family, random weights."""
    from transformers import BertConfig, DistilBertConfig, RobertaConfig

    if architecture == "bert":
        kwargs = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=128)
        cls = BertConfig
    elif architecture == "distilbert":
        kwargs = dict(vocab_size=vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=128)
        cls = DistilBertConfig
    elif architecture == "roberta":
        kwargs = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=130, pad_token_id=1)
        cls = RobertaConfig
    else:
        raise ValueError(f"unknown architecture {architecture!r}")
    kwargs.update(overrides)
    return cls(**kwargs)


def hub_uploaded_files(upload: dict, folder) -> list[str]:
    """What an intercepted ``HfApi.upload_folder(**upload)`` call would send: every file of ``folder`` that the patterns
    it received let through, as huggingface_hub filters them. Asserts that this is exactly
    ``hub_upload.hub_upload_files(folder)``, with no prediction, checkpoint or corpus-text (.jsonl) file, and that
    the folder holds files that stay local, so that a push without the allow-list (``allow_patterns=None``, the whole
    output folder, another folder) fails here."""
    from huggingface_hub.utils import filter_repo_objects

    from clinical_ner_crf.hub_upload import hub_upload_files

    folder = Path(folder)
    assert Path(upload["folder_path"]) == folder, upload["folder_path"]
    everything = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    uploaded = sorted(filter_repo_objects(everything, allow_patterns=upload.get("allow_patterns"),
                                          ignore_patterns=upload.get("ignore_patterns")))
    assert uploaded == hub_upload_files(folder), f"allow_patterns={upload.get('allow_patterns')!r}"
    assert not [name for name in uploaded
                if name.startswith(("predictions/", "checkpoint-")) or name.endswith(".jsonl")], uploaded
    assert set(everything) - set(uploaded), "the folder holds nothing the allow-list keeps local: nothing is checked"
    return uploaded


@pytest.fixture(scope="session")
def wordpiece_tokenizer():
    return build_wordpiece_tokenizer()


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory):
    """prepare_n2c2.py --synthetic 40 --seed 3, as a user runs it: built once per test process, read (never written)
    by the tests of every module that trains on it."""
    import subprocess

    output_dir = tmp_path_factory.mktemp("data") / "synthetic"
    subprocess.run([sys.executable, "prepare_n2c2.py", "--synthetic", "40", "--seed", "3", "--output_dir",
                    str(output_dir)], cwd=REPO_ROOT, check=True, capture_output=True)
    return output_dir


@pytest.fixture(scope="session")
def shared_data_dir():
    return SHARED_DATA
