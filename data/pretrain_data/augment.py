"""Image (and box) augmentation of the pretraining tasks, drawing from explicit random generators.

The dataset seeds a ``random.Random`` and a ``torch.Generator`` per sample; the global generators are never
touched, because fairseq reads batches in a background thread while the model draws its dropout masks.
Boxes follow :mod:`data.transforms`: xyxy pixels in ``target["boxes"]``.
"""
from __future__ import annotations

import random

import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from torchvision.transforms.autoaugment import _apply_op

from data.transforms import SubsetRandAugment, crop, hflip, resize


def random_resize(image, target, sizes: list[int], max_size: int, rng: random.Random):
    """:func:`data.transforms.resize` to a shorter side drawn from ``sizes``."""
    return resize(image, target, rng.choice(sizes), max_size)


def random_hflip(image, target, p: float, rng: random.Random):
    return hflip(image, target) if rng.random() < p else (image, target)


def rand_augment(image, augment: SubsetRandAugment, generator: torch.Generator):
    """torchvision's RandAugment step (``num_ops`` ops of the subset at a fixed magnitude) with ``generator``."""
    _, height, width = F.get_dimensions(image)
    ops = augment._augmentation_space(augment.num_magnitude_bins, (height, width))
    names = list(ops)
    for _ in range(augment.num_ops):
        name = names[int(torch.randint(len(names), (1,), generator=generator))]
        magnitudes, signed = ops[name]
        magnitude = float(magnitudes[augment.magnitude]) if magnitudes.ndim > 0 else 0.0
        if signed and torch.randint(2, (1,), generator=generator):
            magnitude = -magnitude
        image = _apply_op(image, name, magnitude, interpolation=augment.interpolation, fill=augment.fill)
    return image


def drop_empty_boxes(target: dict) -> dict:
    """Keep the boxes (and their ``labels``) that still have a positive width and height."""
    boxes = target["boxes"].reshape(-1, 2, 2)
    keep = torch.all(boxes[:, 1, :] > boxes[:, 0, :], dim=1)
    target = dict(target)
    target["boxes"] = target["boxes"][keep]
    if "labels" in target:
        target["labels"] = [label for label, k in zip(target["labels"], keep.tolist()) if k]
    return target


class ObjectCenterCrop:
    """A ``size`` (h, w) crop centred on the first box, shifted to stay inside the image; boxes are clipped,
    never dropped (the grounding target is the first box)."""

    def __init__(self, size: tuple[int, int]):
        self.size = size

    def __call__(self, image, target):
        width, height = image.size
        crop_h, crop_w = self.size
        x0, y0, x1, y1 = target["boxes"][0].tolist()
        center_x, center_y = (x0 + x1) / 2, (y0 + y1) / 2
        left = max(center_x - crop_w / 2 + min(width - center_x - crop_w / 2, 0), 0)
        top = max(center_y - crop_h / 2 + min(height - center_y - crop_h / 2, 0), 0)
        return crop(image, target, (top, left, crop_h, crop_w))


class LargeScaleJitter:
    """Large scale jitter (copy-paste augmentation): scale so the image covers ``output_size`` x ``scale`` on
    both sides (scale uniform in [min, max], max >= min >= 1), then a random ``output_size`` square crop;
    boxes left without area are dropped."""

    def __init__(self, output_size: int = 512, aug_scale_min: float = 0.3, aug_scale_max: float = 2.0):
        if aug_scale_min < 1.0:
            raise ValueError("LargeScaleJitter crops only: aug_scale_min must be >= 1 (padding is not supported)")
        self.output_size = output_size
        self.aug_scale_min, self.aug_scale_max = aug_scale_min, aug_scale_max

    def __call__(self, image, target, generator: torch.Generator):
        image_size = torch.tensor(image.size[::-1])  # (h, w)
        random_scale = torch.rand(1, generator=generator) * (self.aug_scale_max - self.aug_scale_min)
        wanted = ((random_scale + self.aug_scale_min) * self.output_size).round()
        scale = torch.maximum(wanted / image_size[0], wanted / image_size[1])
        scaled_size = (image_size * scale).round().int()
        scaled = F.resize(image, scaled_size.tolist(), interpolation=T.InterpolationMode.BICUBIC)
        ratio_h, ratio_w = (scaled_size / image_size).tolist()
        target = dict(target)
        target["boxes"] = target["boxes"] * torch.as_tensor([ratio_w, ratio_h, ratio_w, ratio_h])
        target["size"] = scaled_size

        offset = ((scaled_size - self.output_size) * torch.rand(2, generator=generator)).floor().int().tolist()
        cropped, target = crop(scaled, target, (offset[0], offset[1], self.output_size, self.output_size))
        return cropped, drop_empty_boxes(target)
