"""Helpers shared by the OFA datasets: image decoding, coordinate bins, token collation."""
from __future__ import annotations

import base64
import binascii
import math
import string
import warnings
from io import BytesIO

import numpy as np
import torch
import torchvision.io
from PIL import Image, ImageFile

# The original accepts truncated JPEGs (decoding what is there); keep that behaviour. Image size is limited by
# ``max_pixels`` below instead of Pillow's global limit (a warning up to twice the limit, an error beyond).
ImageFile.LOAD_TRUNCATED_IMAGES = True
Image.MAX_IMAGE_PIXELS = None

#: largest image decoded by default (Pillow's limit, 9459x9459): a few MB of base64 can otherwise hold a
#: 30000x30000 PNG that takes 13 GB and half a minute to decode
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485
warnings.filterwarnings("ignore", "(Possibly )?corrupt EXIF data", UserWarning)

_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)


def strip_punctuation(text: str) -> str:
    """``text`` without ASCII punctuation, stripped (how the original cleans captions for training and CIDEr)."""
    return text.translate(_NO_PUNCTUATION).strip()

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
    res = batch_tensor((len(values), size, *values[0].shape[1:]), values[0].dtype).fill_(pad_idx)
    for i, v in enumerate(values):
        if left_pad:
            res[i, size - len(v):] = v
        else:
            res[i, : len(v)] = v
    return res


def batch_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU tensor for a collated batch; in shared memory inside a DataLoader worker, so the
    batch reaches the main process without the extra copy pickling would make (as torch's default collate)."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    storage = torch.UntypedStorage._new_shared(int(np.prod(shape)) * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage).view(shape)


def stack_batch(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack(tensors)`` into a :func:`batch_tensor`."""
    return torch.stack(tensors, out=batch_tensor((len(tensors), *tensors[0].shape), tensors[0].dtype))


def _base64_bytes(text: str | bytes) -> bytes:
    data = text.encode("ascii", "ignore") if isinstance(text, str) else text
    try:
        # map the URL-safe alphabet onto the standard one so both decode; reject stray characters
        return base64.b64decode(data.strip().translate(_URLSAFE_TO_STANDARD), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"invalid base64 ({e})") from None


def check_image_pixels(width: int, height: int, max_pixels: int) -> None:
    """Refuse an image larger than ``max_pixels`` (0: no limit) before it is decoded."""
    if max_pixels and width * height > max_pixels:
        raise ValueError(f"image of {width}x{height} pixels is larger than --max-image-pixels {max_pixels} "
                         f"(raise the flag to accept it)")


def _open_image(raw: bytes, draft_size: int | None = None,
                max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Image.Image:
    def not_an_image(e: Exception) -> ValueError:
        return ValueError(f"base64 does not decode to an image ({type(e).__name__}: {e})")

    try:
        image = Image.open(BytesIO(raw))  # reads the header only
    except Exception as e:  # PIL raises many types (UnidentifiedImageError, OSError, SyntaxError...)
        raise not_an_image(e) from None
    check_image_pixels(*image.size, max_pixels)
    try:
        if draft_size:
            image.draft(image.mode, (draft_size, draft_size))
        image.load()
    except Exception as e:
        raise not_an_image(e) from None
    return image


def decode_base64_image(text: str | bytes, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode a base64 (standard or URL-safe) PNG/JPEG/... string into a loaded PIL image.

    Raises ``ValueError`` with the reason when the text is not base64, not an image, or an image of more than
    ``max_pixels`` pixels (0: no limit).
    """
    return _open_image(_base64_bytes(text), max_pixels=max_pixels)


_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame, not DHT/JPG/DAC


def _jpeg_header(raw: bytes) -> tuple[int, int, int] | None:
    """(components, height, width) of a complete JPEG; None when not a JPEG, truncated, or unreadable."""
    if not (raw.startswith(b"\xff\xd8") and raw.endswith(b"\xff\xd9")):
        return None
    pos = 2
    while pos + 4 <= len(raw) and raw[pos] == 0xFF:
        marker = raw[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_SOF_MARKERS:
            frame = raw[pos + 5:pos + 10]  # after length and precision: height (2), width (2), components (1)
            if len(frame) < 5:
                return None
            return frame[4], int.from_bytes(frame[0:2], "big"), int.from_bytes(frame[2:4], "big")
        pos += 2 + int.from_bytes(raw[pos + 2:pos + 4], "big")
    return None


def decode_base64_image_rgb(text: str | bytes, draft_size: int | None = None,
                            max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> torch.Tensor:
    """The image of :func:`decode_base64_image` as RGB pixels: a uint8 (3, H, W) tensor.

    Complete greyscale/RGB JPEGs (the bulk of OFA's data) are decoded by torchvision's libjpeg-turbo straight
    into a tensor; anything else (PNG, CMYK or truncated JPEGs, ...) goes through PIL's ``convert("RGB")``,
    whose conversions and truncated-file handling define the result. With ``draft_size``, JPEGs at least twice
    that size on both sides are decoded at 1/2, 1/4 or 1/8 scale (libjpeg DCT scaling, never below
    ``draft_size``): faster on large photos, but not the pixels of a full decode followed by a resize.
    """
    raw = _base64_bytes(text)
    header = _jpeg_header(raw)
    if header is not None and header[0] in (1, 3):
        check_image_pixels(header[2], header[1], max_pixels)
        if draft_size and min(header[1:]) >= 2 * draft_size:
            return pil_to_pixels(_open_image(raw, draft_size, max_pixels))
        try:
            return torchvision.io.decode_jpeg(torch.frombuffer(bytearray(raw), dtype=torch.uint8),
                                              mode=torchvision.io.ImageReadMode.RGB)
        except RuntimeError:
            pass  # let PIL decode what it can, or name the problem
    return pil_to_pixels(_open_image(raw, max_pixels=max_pixels))


def pil_to_pixels(image: Image.Image) -> torch.Tensor:
    """RGB uint8 (3, H, W) pixels of a PIL image (a channels-last tensor viewed channels-first)."""
    return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1)


def encode_image_base64(image: Image.Image, format: str = "PNG") -> str:
    """URL-safe base64 of ``image`` saved as ``format`` (the layout the TSV files use)."""
    buffer = BytesIO()
    image.save(buffer, format=format)
    return base64.urlsafe_b64encode(buffer.getvalue()).decode("ascii")


def finite_float(text: str) -> float:
    """``float(text)``, refusing nan and +-inf: they pass every range check and break far from their row."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text.strip()!r} is not a finite number")
    return value


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
