"""Joint image+box transforms keep boxes on the object; the ImageNet augmentation survives posterize."""
import random

import pytest
import torch
from PIL import Image, ImageDraw

from data.transforms import _posterize_clamped, classify_train_transform, grounding_transform, hflip, resize


def _boxed_image(w=120, h=90, box=(20, 15, 70, 60)):
    image = Image.new("RGB", (w, h))
    ImageDraw.Draw(image).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=(255, 255, 255))
    return image, {"boxes": torch.tensor([box], dtype=torch.float32), "size": torch.tensor([h, w]),
                   "text": "the left square, right of nothing"}


def _white_extent(pixels: torch.Tensor):
    ys, xs = torch.nonzero(pixels.mean(0) > 0.2, as_tuple=True)  # after normalisation black is -1
    return [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


def test_resize_squares_like_the_original():
    image, target = _boxed_image()
    resized, out = resize(image, target, 96, max_size=96)
    assert resized.size == (96, 96) and out["size"].tolist() == [96, 96]
    assert torch.allclose(out["boxes"], torch.tensor([[16.0, 16.0, 56.0, 64.0]]))
    resized, _ = resize(image, None, 60)  # shorter side to 60, aspect kept
    assert resized.size == (80, 60)


def test_hflip_mirrors_box_and_swaps_left_right():
    image, target = _boxed_image()
    flipped, out = hflip(image, target)
    assert out["boxes"].tolist() == [[50.0, 15.0, 100.0, 60.0]]
    assert out["text"] == "the right square, left of nothing"
    assert flipped.getpixel((99, 20)) == (255, 255, 255) and flipped.getpixel((20, 20)) == (0, 0, 0)


@pytest.mark.parametrize("seed", range(6))
def test_augmented_grounding_keeps_box_on_the_object(seed):
    random.seed(seed)
    image, target = _boxed_image()
    transform = grounding_transform(64, max_image_size=64, augment=True)
    pixels, out = transform(image, target)
    assert pixels.shape == (3, 64, 64)
    box = (out["boxes"][0] * 64).tolist()  # Normalize divides by max_image_size
    assert all(abs(a - b) <= 2.0 for a, b in zip(box, _white_extent(pixels))), (box, _white_extent(pixels))


def test_classify_train_transform_survives_posterize_noise():
    assert _posterize_clamped(Image.new("RGB", (8, 8), (77, 77, 77)), 0).getpixel((0, 0)) == (0, 0, 0)
    transform = classify_train_transform(32)
    for op in transform.transforms[3].ops:  # force timm's RandAugment to hit posterize at the noisy maximum
        op.magnitude, op.magnitude_std, op.prob = 10, 0.5, 1.0
    random.seed(0)
    image = Image.new("RGB", (40, 30), (120, 80, 40))
    for _ in range(20):
        assert transform(image).shape == (3, 32, 32)
