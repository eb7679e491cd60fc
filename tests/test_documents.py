"""clinical_ner_crf/documents.py: how a bad line is reported, and that messages give offsets, lengths and hashes, never note text, unless asked."""

import pytest

from clinical_ner_crf import documents
from clinical_ner_crf.brat import read_brat_document
from clinical_ner_crf.documents import BratFormatError
from test_brat import NOTE, write_pair


def test_error_message_format():
    error = BratFormatError("notes/101.ann", 7, "span text 'aspirn' does not match the .txt at 120-126 ('aspirin')")
    assert str(error) == "notes/101.ann:7: span text 'aspirn' does not match the .txt at 120-126 ('aspirin')"
    assert (error.path, error.line) == ("notes/101.ann", 7)
    assert str(BratFormatError("notes", None, "no .txt or .ann files found")) == "notes: no .txt or .ann files found"
    assert isinstance(error, ValueError)


def test_messages_give_lengths_and_hashes_not_text_unless_asked(tmp_path, monkeypatch):
    txt = write_pair(tmp_path, "101", NOTE, "T1\tDrug 0 7\tAspirn\nT2\tDrug 30 99\tpain\n")
    with pytest.raises(BratFormatError) as info:
        read_brat_document(txt)
    assert "Aspirn" not in str(info.value) and "Aspirin" not in str(info.value)
    assert "does not match the .txt at 0-7, which holds <7 characters, sha256 " in str(info.value)
    monkeypatch.setattr(documents, "SHOW_TEXT_IN_MESSAGES", True)  # prepare_n2c2.py --show_text_in_messages
    with pytest.raises(BratFormatError) as info:
        read_brat_document(txt)
    assert "'Aspirn'" in str(info.value) and "'Aspirin'" in str(info.value)
