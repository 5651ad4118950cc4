"""Image transforms: the square patch resize of every task (:class:`PatchResizeTransform`), joint image+box
transforms for grounding, ImageNet train augmentation, OCR resizing."""
from __future__ import annotations

import random
import re
from typing import Callable, Sequence

import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
import torchvision.transforms.v2.functional as F2
from PIL import Image, ImageOps

from data.images import pil_to_pixels

IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)


def normalization(imagenet_default_mean_and_std: bool) -> tuple[Sequence[float], Sequence[float]]:
    """(mean, std) of ``--imagenet-default-mean-and-std``, else OFA's 0.5/0.5."""
    if imagenet_default_mean_and_std:
        return IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    return (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


class ToNormalizedTensor:
    """``ToTensor`` then ``Normalize`` in one pass over the uint8 pixels of a PIL image or a (3, H, W) uint8
    tensor; the result is a contiguous float32 (3, H, W) tensor, equal to the two steps up to float rounding."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.shift = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1) * 255
        self.scale = 1 / (torch.tensor(std, dtype=torch.float32).view(3, 1, 1) * 255)

    def __call__(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        pixels = image if isinstance(image, torch.Tensor) else pil_to_pixels(image)
        # copy_ converts and makes channels-first contiguous in one pass (PIL/libjpeg memory is channels-last)
        return torch.empty(pixels.shape, dtype=torch.float32).copy_(pixels).sub_(self.shift).mul_(self.scale)


class PatchResizeTransform:
    """RGB, bicubic antialiased resize to a ``size`` square, normalised float tensor (the original's eval
    transform). Takes a PIL image or RGB uint8 (3, H, W) pixels (see ``decode_base64_image_rgb``).

    The resize runs on uint8 tensors with torch's PIL-compatible antialiased bicubic (a = -0.5, horizontal pass
    first, integer rounding between passes, as Pillow's resampler), faster than PIL and within 2 grey levels
    of it. Pillow 13 runs the vertical pass first for some shapes; where the first pass clips,
    the order alone moves pixels by up to 9 grey levels (0.07 normalised) on photo-like images, ~25 on noise.
    """

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float]):
        self.size = size
        self.to_normalized_tensor = ToNormalizedTensor(mean, std)

    def __call__(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        pixels = image if isinstance(image, torch.Tensor) else pil_to_pixels(image)
        if pixels.dtype != torch.uint8 or pixels.dim() != 3 or pixels.shape[0] != 3:
            raise ValueError(f"expected RGB uint8 pixels (3, H, W), got {pixels.dtype} {tuple(pixels.shape)}")
        if pixels.shape[1:] != (self.size, self.size):
            pixels = F2.resize(pixels, [self.size, self.size], interpolation=T.InterpolationMode.BICUBIC,
                               antialias=True)
        return self.to_normalized_tensor(pixels)


def patch_resize_transform(patch_image_size: int, imagenet_default_mean_and_std: bool = False) -> Callable:
    """RGB, bicubic resize to a ``patch_image_size`` square, normalised tensor (the original's eval transform)."""
    return PatchResizeTransform(patch_image_size, *normalization(imagenet_default_mean_and_std))


def _to_rgb(image: Image.Image) -> Image.Image:
    return image.convert("RGB")


#: OFA-OCR's document layout: a text page resized to one 64 x 1920 line, cut into 4 lines stacked 256 x 480
DOCUMENT_LINE = (64, 1920)
DOCUMENT_ROWS = 4
#: the shorter side of a text-line image is never resized below this
OCR_MIN_SIDE = 64


def ocr_resize(image: Image.Image, size: int, is_document: bool, rng: random.Random) -> torch.Tensor:
    """OFA-OCR's image layout: RGB uint8 (3, size, size) pixels.

    A text line keeps its aspect ratio: bicubic resize of the long side to ``size`` (the short side to
    ``max(64, int(size * short / long))``), then edge padding of the short side at an offset drawn by
    ``rng.randint(0, size - short)`` (at validation too, as the original). A document (``is_document``) becomes
    one 64 x 1920 line cut into 4 stacked pieces of 64 x 480, padded vertically the same way (so ``size`` 480).
    """
    image = image.convert("RGB")
    width, height = image.size
    if is_document:
        line_height, line_width = DOCUMENT_LINE
        if size != line_width // DOCUMENT_ROWS:
            raise ValueError(f"--is-document needs --patch-image-size {line_width // DOCUMENT_ROWS}, got {size}")
        pixels = pil_to_pixels(image.resize((line_width, line_height), Image.BICUBIC))
        # the original goes through ToTensor/ToPILImage here: x / 255 * 255 truncated to uint8 may lose a level
        pixels = pixels.float().div(255).mul(255).byte()
        pixels = torch.cat(pixels.chunk(DOCUMENT_ROWS, dim=-1), dim=-2)
        top = rng.randint(0, size - pixels.shape[1])
        return _edge_pad(pixels, top, size - pixels.shape[1] - top, 0, 0)
    if width >= height:
        new_width, new_height = max(OCR_MIN_SIDE, size), max(OCR_MIN_SIDE, int(size * (height / width)))
        top, left = rng.randint(0, size - new_height), 0
    else:
        new_width, new_height = max(OCR_MIN_SIDE, int(size * (width / height))), max(OCR_MIN_SIDE, size)
        top, left = 0, rng.randint(0, size - new_width)
    pixels = pil_to_pixels(image.resize((new_width, new_height), Image.BICUBIC))
    return _edge_pad(pixels, top, size - new_height - top, left, size - new_width - left)


def _edge_pad(pixels: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Pad (C, H, W) pixels by repeating the border rows and columns (PIL/numpy ``edge`` mode)."""
    _, height, width = pixels.shape
    rows = torch.arange(-top, height + bottom).clamp_(0, height - 1)
    cols = torch.arange(-left, width + right).clamp_(0, width - 1)
    return pixels[:, rows][:, :, cols]


# ---------------------------------------------------------------------------------------------------------------
# Joint image + box transforms. ``target`` is a dict with "boxes" (N, 4) float xyxy pixels, "size" tensor([h, w])
# and optionally "text" (the referring expression, whose left/right words follow a horizontal flip).
# ---------------------------------------------------------------------------------------------------------------

def resize(image: Image.Image, target: dict | None, size: int, max_size: int | None = None):
    """Resize the shorter side to ``size`` (each side capped at ``max_size``, as the original; with
    ``size == max_size`` this yields a square), scaling boxes by the per-axis ratios."""
    w, h = image.size
    if w < h:
        out_w, out_h = size, int(size * h / w)
    else:
        out_w, out_h = int(size * w / h), size
    if (w <= h and w == size) or (h <= w and h == size):
        out_w, out_h = w, h
    if max_size is not None:
        out_w, out_h = min(out_w, int(max_size)), min(out_h, int(max_size))
    resized = F.resize(image, [out_h, out_w], interpolation=T.InterpolationMode.BICUBIC)
    if target is None:
        return resized, None
    ratio_w, ratio_h = out_w / w, out_h / h
    target = dict(target)
    target["boxes"] = target["boxes"] * torch.as_tensor([ratio_w, ratio_h, ratio_w, ratio_h])
    target["size"] = torch.tensor([out_h, out_w])
    return resized, target


def crop(image: Image.Image, target: dict, region: tuple[int, int, int, int]):
    """Crop ``region`` = (top, left, height, width); boxes are shifted and clipped to the crop."""
    top, left, height, width = region
    cropped = F.crop(image, top, left, height, width)
    target = dict(target)
    boxes = target["boxes"] - torch.as_tensor([left, top, left, top], dtype=torch.float32)
    boxes = torch.min(boxes.reshape(-1, 2, 2), torch.as_tensor([width, height], dtype=torch.float32)).clamp(min=0)
    target["boxes"] = boxes.reshape(-1, 4)
    target["size"] = torch.tensor([height, width])
    return cropped, target


_LEFT_RIGHT = re.compile(r"\b(left|right)\b")


def hflip(image: Image.Image, target: dict):
    """Mirror the image and boxes; "left" and "right" in the text swap so the expression stays true."""
    w = image.size[0]
    target = dict(target)
    boxes = target["boxes"]
    target["boxes"] = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], dim=1)
    if "text" in target:
        target["text"] = _LEFT_RIGHT.sub(lambda m: "right" if m.group(1) == "left" else "left", target["text"])
    return F.hflip(image), target


class Compose:
    def __init__(self, transforms: list):
        self.transforms = transforms

    def __call__(self, image, target):
        for t in self.transforms:
            image, target = t(image, target)
        return image, target


class RandomResize:
    """Resize with a size drawn from ``sizes`` (see :func:`resize`)."""

    def __init__(self, sizes: Sequence[int], max_size: int | None = None):
        self.sizes, self.max_size = list(sizes), max_size

    def __call__(self, image, target=None):
        return resize(image, target, random.choice(self.sizes), self.max_size)


class RandomCropAroundBox:
    """Random ``size`` x ``size`` crop that keeps the first box inside whenever the box fits."""

    def __init__(self, size: int):
        self.size = size

    def _offset(self, lo: float, hi: float, extent: int) -> int:
        # crop start s must satisfy s <= lo and s + size >= hi, and stay inside [0, extent - size]
        first = max(0, int(torch.ceil(torch.tensor(hi - self.size))))
        last = min(int(lo), extent - self.size)
        return random.randint(first, last) if first <= last else max(0, min(first, extent - self.size))

    def __call__(self, image, target):
        w, h = image.size
        if w < self.size or h < self.size:
            raise ValueError(f"image {w}x{h} smaller than crop {self.size}")
        x0, y0, x1, y1 = target["boxes"][0].tolist()
        return crop(image, target, (self._offset(y0, y1, h), self._offset(x0, x1, w), self.size, self.size))


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image, target):
        return hflip(image, target) if random.random() < self.p else (image, target)


class ToTensor:
    def __call__(self, image, target):
        return F.to_tensor(image), target


class Normalize:
    """Normalise pixels; boxes are divided by ``max_image_size`` (the original's coordinate scale for bins)."""

    def __init__(self, mean, std, max_image_size: int = 512):
        self.mean, self.std, self.max_image_size = mean, std, max_image_size

    def __call__(self, image, target=None):
        image = F.normalize(image, mean=self.mean, std=self.std)
        if target is None:
            return image, None
        target = dict(target)
        target["boxes"] = target["boxes"] / self.max_image_size
        return image, target


def grounding_transform(
    patch_image_size: int, imagenet_default_mean_and_std: bool = False, max_image_size: int = 512,
    augment: bool = False,
) -> Compose:
    """The original's grounding transform (square resize); ``augment`` adds random scale, crop and flip."""
    mean, std = normalization(imagenet_default_mean_and_std)
    if augment:
        scales = [int(patch_image_size * s) for s in (1.0, 1.1, 1.2, 1.3)]
        geometric = [RandomHorizontalFlip(), RandomResize(scales, max_size=scales[-1]),
                     RandomCropAroundBox(patch_image_size)]
    else:
        geometric = [RandomResize([patch_image_size], max_size=patch_image_size)]
    return Compose(geometric + [ToTensor(), Normalize(mean, std, max_image_size)])


# ---------------------------------------------------------------------------------------------------------------
# ImageNet finetuning augmentation (train split of image_classify)
# ---------------------------------------------------------------------------------------------------------------

def _posterize_clamped(image: Image.Image, bits_to_keep: int, **_):
    # timm's magnitude noise can ask for 0 bits, which current Pillow rejects (the original's crash); keep >= 1
    bits = min(8, max(1, int(bits_to_keep)))
    return image if bits >= 8 else ImageOps.posterize(image, bits)


class SubsetRandAugment(T.RandAugment):
    """torchvision RandAugment restricted to the ops of the original's ``RandomAugment(2, 7, augs=[...])``."""

    OPS = ("Identity", "AutoContrast", "Equalize", "Brightness", "Sharpness", "ShearX", "ShearY",
           "TranslateX", "TranslateY", "Rotate")

    def __init__(self, num_ops: int = 2, magnitude: int = 7):
        super().__init__(num_ops=num_ops, magnitude=magnitude, num_magnitude_bins=11)

    def _augmentation_space(self, num_bins: int, image_size: tuple[int, int]):
        space = super()._augmentation_space(num_bins, image_size)
        return {name: space[name] for name in self.OPS}


def classify_train_transform(patch_image_size: int, imagenet_default_mean_and_std: bool = False) -> Callable:
    """The original's ImageNet train pipeline (timm crop/flip/RandAugment m9-mstd0.5-inc1, extra RandAugment,
    random erasing 0.25) without opencv, with timm's posterize clamped to a valid bit count."""
    from timm.data.auto_augment import rand_augment_transform
    from timm.data.random_erasing import RandomErasing
    from timm.data.transforms import RandomResizedCropAndInterpolation

    mean, std = normalization(imagenet_default_mean_and_std)
    rand_augment = rand_augment_transform(
        "rand-m9-mstd0.5-inc1",
        {"translate_const": int(patch_image_size * 0.45), "img_mean": tuple(min(255, round(255 * x)) for x in mean),
         "interpolation": Image.BICUBIC},
    )
    for op in rand_augment.ops:
        if op.name.startswith("Posterize"):
            op.aug_fn = _posterize_clamped
    return T.Compose([
        _to_rgb,
        RandomResizedCropAndInterpolation(patch_image_size, interpolation="bicubic"),
        T.RandomHorizontalFlip(),
        rand_augment,
        SubsetRandAugment(2, 7),
        T.ToTensor(),
        T.Normalize(mean=mean, std=std),
        RandomErasing(0.25, mode="pixel", max_count=1, device="cpu"),
    ])
