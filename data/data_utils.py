"""Helpers shared by the OFA datasets: image decoding, coordinate bins, token collation."""
from __future__ import annotations

import base64
import binascii
import warnings
from io import BytesIO

import numpy as np
import torch
from PIL import Image, ImageFile

# The original accepts truncated JPEGs (decoding what is there) and images of any size; keep that behaviour.
ImageFile.LOAD_TRUNCATED_IMAGES = True
Image.MAX_IMAGE_PIXELS = None
warnings.filterwarnings("ignore", "(Possibly )?corrupt EXIF data", UserWarning)

_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")

IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)


def collate_tokens(values: list[torch.Tensor], pad_idx, eos_idx=None, left_pad: bool = False) -> torch.Tensor:
    """Stack 1-D (or 2-D, padded along the first dim) tensors into a batch filled with ``pad_idx``.

    2-D boolean masks are padded with ``bool(pad_idx)`` (True for fairseq's pad 1), as the original.
    ``eos_idx`` is accepted for fairseq call compatibility.
    """
    if values[0].dim() not in (1, 2):
        raise ValueError(f"collate_tokens takes 1-D or 2-D tensors, got {values[0].dim()}-D")
    size = max(v.size(0) for v in values)
    res = values[0].new_full((len(values), size, *values[0].shape[1:]), pad_idx)
    for i, v in enumerate(values):
        if left_pad:
            res[i, size - len(v):] = v
        else:
            res[i, : len(v)] = v
    return res


def decode_base64_image(text: str | bytes) -> Image.Image:
    """Decode a base64 (standard or URL-safe) PNG/JPEG/... string into a loaded PIL image.

    Raises ``ValueError`` with the reason when the text is not base64 or not an image.
    """
    data = text.encode("ascii", "ignore") if isinstance(text, str) else text
    data = data.strip()
    try:
        # map the URL-safe alphabet onto the standard one so both decode; reject stray characters
        raw = base64.b64decode(data.translate(_URLSAFE_TO_STANDARD), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"invalid base64 ({e})") from None
    try:
        image = Image.open(BytesIO(raw))
        image.load()
    except Exception as e:  # PIL raises many types (UnidentifiedImageError, OSError, SyntaxError...)
        raise ValueError(f"base64 does not decode to an image ({type(e).__name__}: {e})") from None
    return image


def encode_image_base64(image: Image.Image, format: str = "PNG") -> str:
    """URL-safe base64 of ``image`` saved as ``format`` (the layout the TSV files use)."""
    buffer = BytesIO()
    image.save(buffer, format=format)
    return base64.urlsafe_b64encode(buffer.getvalue()).decode("ascii")


def quantize(value: torch.Tensor | float, num_bins: int) -> int:
    """Bin index of a coordinate normalised to [0, 1] (``round(v * (num_bins - 1))``)."""
    return int((torch.as_tensor(value) * (num_bins - 1)).round())


def bins_to_text(values, num_bins: int) -> str:
    """``"<bin_a> <bin_b> ..."`` for normalised coordinates, the target format of grounding."""
    return " ".join(f"<bin_{quantize(v, num_bins)}>" for v in values)


def object_array(items: list) -> np.ndarray:
    """A 1-D numpy object array of ``items`` (ragged lists stay lists, unlike ``np.array`` on numpy >= 1.24)."""
    array = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        array[i] = item
    return array
