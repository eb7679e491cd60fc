"""clinical_ner_crf/onnx_backend.py: the CRF decoded in numpy gives modeling_crf's paths and marginals."""

import numpy as np
import pytest
import torch

import modeling_crf
from clinical_ner_crf import onnx_backend


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
