"""Hub upload: what ``--push_to_hub`` may send (an allow-list of model, tokenizer, code and card files: never predictions, data or logs, which may hold note text), and the acknowledgement a vocabulary learned from the corpus needs before it leaves the machine, read from the mark the tokenizer carries."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

from transformers.tokenization_utils_base import TOKENIZER_CONFIG_FILE
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .command_line import UsageError
from .files import (
    CALIBRATION_FILE, CRF_FILE, EXPORT_INFO_FILE, ONNX_FILE, ONNX_INT8_FILE, QUANTIZATION_FILE, RUN_ARGS_FILE,
    RUN_INFO_FILE,
)
from .model_sources import valid_hub_id
from .subwords import CORPUS_VOCABULARY_MARK, mark_corpus_vocabulary

# Files `--push_to_hub` uploads: model, tokenizer, config, modeling file and card. Nothing else
# (no predictions, datasets, logs or training state: they may hold corpus text).
HUB_UPLOAD_PATTERNS = [
    "config.json",
    "model.safetensors",
    "model-*.safetensors",
    "model.safetensors.index.json",
    "modeling_crf.py",
    "windows.py",  # the CRF pipeline (windows.NerPipeline) and the tag scheme it imports
    "tagging.py",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "added_tokens.json",
    "README.md",
    CALIBRATION_FILE,  # run_ner_crf.py --calibrate_confidence: the temperature and reliability tables (numbers)
    # export_onnx.py folders: the graphs, the CRF scores, and what the export and quantization did (numbers).
    ONNX_FILE,
    ONNX_FILE + ".data",  # external weights of a large graph
    ONNX_INT8_FILE,
    CRF_FILE,
    EXPORT_INFO_FILE,
    QUANTIZATION_FILE,
]


def push_model_to_hub(output_dir: Path, repo_id: str, token: str | None, private: bool | None = None,
                      script: str = "run_ner_crf.py", corpus_vocabulary_acknowledged: bool = False):
    """Upload model, tokenizer, config, code files and card: nothing else (see HUB_UPLOAD_PATTERNS). A tokenizer
    marked as learned from a corpus is uploaded only when acknowledged (``--push_corpus_vocabulary``): checked again
    here, on the folder being uploaded (:func:`check_vocabulary_upload`)."""
    from huggingface_hub import HfApi

    check_vocabulary_upload(True, acknowledged=corpus_vocabulary_acknowledged, tokenizer=output_dir)
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=str(output_dir), allow_patterns=HUB_UPLOAD_PATTERNS,
                             commit_message=f"Upload model trained with {script}")


def hub_upload_files(output_dir: Path) -> list[str]:
    """The files of ``output_dir`` that :func:`push_model_to_hub` would upload."""
    from huggingface_hub.utils import filter_repo_objects

    files = [p.relative_to(output_dir).as_posix() for p in Path(output_dir).rglob("*") if p.is_file()]
    return sorted(filter_repo_objects(files, allow_patterns=HUB_UPLOAD_PATTERNS))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _marked(config: Mapping[str, Any]) -> bool:
    return config.get(CORPUS_VOCABULARY_MARK) is True


def corpus_vocabulary_evidence(tokenizer: Any) -> str | None:
    """Where a tokenizer says that its vocabulary was learned from a corpus, or None (see :func:`vocabulary_from_corpus`)."""
    if tokenizer is None or (isinstance(tokenizer, (str, os.PathLike)) and not str(tokenizer)):
        return None
    if not isinstance(tokenizer, (str, os.PathLike)):  # a tokenizer object: its init kwargs are its tokenizer_config.json
        if _marked(getattr(tokenizer, "init_kwargs", None) or {}):
            return f"{CORPUS_VOCABULARY_MARK} in the tokenizer's config"
        name = getattr(tokenizer, "name_or_path", "")
        return corpus_vocabulary_evidence(name) if name and Path(name).is_dir() else None
    folder = Path(tokenizer)
    if folder.is_dir():
        if _marked(_read_json(folder / TOKENIZER_CONFIG_FILE)):
            return f"{CORPUS_VOCABULARY_MARK} in {folder / TOKENIZER_CONFIG_FILE}"
        # Folders written before the mark existed: the run's record says it (a checkpoint's, in its run folder).
        records = [folder / RUN_INFO_FILE]
        if re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-\d+", folder.name):
            records.append(folder.parent / RUN_INFO_FILE)
        for record in records:
            if _read_json(record).get("vocabulary_from_corpus"):
                return f"vocabulary_from_corpus in {record}"
        run_args = _read_json(folder / RUN_ARGS_FILE)
        learned_by_pretrain_mlm = "text_sha256" in run_args and not (run_args.get("tokenizer_name")
                                                                      or run_args.get("model_name_or_path"))
        if run_args.get("train_tokenizer") or learned_by_pretrain_mlm:
            return f"the run arguments in {folder / RUN_ARGS_FILE}"
        return None
    if is_hub_id(str(tokenizer)):
        from transformers.utils import cached_file

        try:  # the tokenizer's own config (a few hundred bytes), as from_pretrained would fetch it
            path = cached_file(str(tokenizer), TOKENIZER_CONFIG_FILE, _raise_exceptions_for_missing_entries=False,
                               _raise_exceptions_for_connection_errors=False)
        except Exception:  # unreachable or gated: the check on the folder being uploaded still runs (push_model_to_hub)
            path = None
        if path and _marked(_read_json(Path(path))):
            return f"{CORPUS_VOCABULARY_MARK} in {tokenizer}'s {TOKENIZER_CONFIG_FILE}"
    return None


def vocabulary_from_corpus(tokenizer: Any) -> bool:
    """Whether a tokenizer's vocabulary was learned from a corpus, so that its words are corpus text, as the tokenizer
    itself says: the mark ``subwords.py`` puts into its tokenizer_config.json (``"vocabulary_from_corpus": true``),
    which travels with every save_pretrained, checkpoint, copy and export. ``tokenizer`` is a tokenizer object (its
    init kwargs), a local folder (a model, one of its ``checkpoint-N`` folders, an export) or a Hub id (its
    tokenizer_config.json). A folder written before the mark existed is read from its run's records (run_info.json,
    the run folder's for a checkpoint; a checkpoint's run_args.json)."""
    return corpus_vocabulary_evidence(tokenizer) is not None


def check_vocabulary_upload(push_to_hub: bool, *, acknowledged: bool, tokenizer: Any = None,
                            learned_here: bool = False) -> bool:
    """Whether the tokenizer a run trains with (and uploads) holds a vocabulary learned from a corpus: learned by this
    run (``learned_here``), or marked in ``tokenizer`` (see :func:`vocabulary_from_corpus`). With ``push_to_hub``
    such a tokenizer is refused unless ``--push_corpus_vocabulary`` (``acknowledged``) says the user knows its words
    are corpus text: a :class:`UsageError` of one line, raised before any work. The one home of that rule: every
    upload path calls it (the scripts before any work, :func:`push_model_to_hub` on the folder it uploads).
    A tokenizer object found to hold such a vocabulary gets the mark if it lacks it (a folder written before the
    mark existed), so that everything the run saves carries it."""
    evidence = "learned from the training text by this run" if learned_here else corpus_vocabulary_evidence(tokenizer)
    init_kwargs = getattr(tokenizer, "init_kwargs", None)
    if evidence and isinstance(init_kwargs, dict) and not _marked(init_kwargs):
        mark_corpus_vocabulary(tokenizer, "learned from a corpus (said by the records of the run that built it)")
    if push_to_hub and evidence and not acknowledged:
        raise UsageError(f"--push_to_hub: the tokenizer's vocabulary is learned from the training notes ({evidence}), "
                         "so its words are corpus text; pass --push_corpus_vocabulary to acknowledge that and upload "
                         "it (check your data's terms first)")
    return evidence is not None


def is_hub_id(name: str | None) -> bool:
    """Whether ``name`` reads as a Hub model id (``org/name`` or ``name``), not a local path."""
    return bool(name) and not Path(name).exists() and valid_hub_id(name)
