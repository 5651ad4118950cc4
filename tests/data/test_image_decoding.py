"""Image decoding (both base64 alphabets, PNG/JPEG, RGB/L/RGBA), bins, ragged object arrays, 2-D collation."""
import base64
from io import BytesIO

import numpy as np
import pytest
import torch
from PIL import Image

from data.collate import pad_batch
from data.images import decode_base64_image
from data.ofa_dataset import bins_to_text, object_array, quantize


def _encoded(mode, format):
    rng = np.random.default_rng(0)
    shape = (24, 32) if mode == "L" else (24, 32, len(mode))
    buffer = BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(buffer, format=format)
    return buffer.getvalue()


@pytest.mark.parametrize("mode,format", [("RGB", "PNG"), ("L", "PNG"), ("RGBA", "PNG"), ("RGB", "JPEG"),
                                         ("L", "JPEG")])
def test_both_base64_alphabets_decode_to_the_same_image(mode, format):
    raw = _encoded(mode, format)
    standard, urlsafe = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    assert standard != urlsafe  # random pixels make '+' or '/' appear
    a, b = decode_base64_image(standard), decode_base64_image(urlsafe)
    assert a.mode == b.mode == mode and a.size == (32, 24) and a.tobytes() == b.tobytes()


def test_quantize_and_bins():
    assert quantize(0.5, 1000) == 500 and quantize(torch.tensor(0.01875), 1000) == 19
    assert bins_to_text(torch.tensor([0.0, 1.0]), 1000) == "<bin_0> <bin_999>"


def test_object_array_keeps_ragged_and_equal_lists():
    ragged, equal = object_array([[0, 1], [0]]), object_array([[0, 1], [2, 3]])
    assert ragged.shape == equal.shape == (2,) and equal[1] == [2, 3]


def test_pad_batch_pads_1d_and_2d():
    assert pad_batch([torch.tensor([5, 6, 7]), torch.tensor([8])], 1).tolist() == [[5, 6, 7], [8, 1, 1]]
    assert pad_batch([torch.tensor([5, 6]), torch.tensor([8])], 1, left_pad=True).tolist() == [[5, 6], [1, 8]]
    masks = pad_batch([torch.zeros(2, 3, dtype=torch.bool), torch.zeros(1, 3, dtype=torch.bool)], 1)
    assert masks.shape == (2, 2, 3) and masks[1, 1].all() and not masks[0].any()  # pad rows True, as the original
