"""Images in TSV columns: base64 (standard or URL-safe) PNG/JPEG/... to pixels, refused before decoding when
too large; and back to base64."""
from __future__ import annotations

import base64
import binascii
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


def base64_bytes(text: str | bytes) -> bytes:
    """The bytes of base64 text in the standard or the URL-safe alphabet (``ValueError`` naming the problem)."""
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
    return _open_image(base64_bytes(text), max_pixels=max_pixels)


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
    raw = base64_bytes(text)
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
