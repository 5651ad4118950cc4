"""The fast image path (libjpeg-turbo decode, uint8 resize, one-pass normalise, shared-memory collation) gives
the pixels of the PIL path it replaces."""
import base64
from io import BytesIO

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image, ImageDraw

from data.collate import batch_tensor, stack_batch
from data.images import _jpeg_header, decode_base64_image, decode_base64_image_rgb
from data.transforms import patch_resize_transform

LEVEL = 1 / 127.5  # one grey level after OFA's 0.5/0.5 normalisation


def _photo(w: int, h: int, seed: int = 0) -> Image.Image:
    """Photo-like test image: smooth shading, texture, hard-edged shapes and thin black/white strokes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    shading = np.stack([128 + 100 * np.sin(6 * xx + 1), 128 + 100 * np.cos(5 * yy),
                        128 + 80 * np.sin(4 * (xx + yy))], -1)
    image = Image.fromarray(np.clip(shading + rng.normal(0, 12, shading.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(30):
        x, y, s = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(2, max(3, w // 5)))
        draw.rectangle([x, y, x + s, y + s // 2], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        draw.line([x, y, x + s, y + s], fill=(255, 255, 255) if s % 2 else (0, 0, 0), width=1 + s % 3)
    return image


def _b64(image: Image.Image, format: str, urlsafe: bool = True, **save) -> str:
    buffer = BytesIO()
    image.save(buffer, format=format, **save)
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(buffer.getvalue()).decode("ascii")


def _pil_pixels(text: str) -> torch.Tensor:
    return torch.from_numpy(np.array(decode_base64_image(text).convert("RGB"))).permute(2, 0, 1)


@pytest.mark.parametrize("mode,format,save", [
    ("RGB", "JPEG", {"quality": 90}), ("RGB", "JPEG", {"quality": 75, "subsampling": 0}),
    ("RGB", "JPEG", {"progressive": True}), ("L", "JPEG", {}), ("CMYK", "JPEG", {}),
    ("RGB", "PNG", {}), ("RGBA", "PNG", {}), ("L", "PNG", {}), ("P", "PNG", {}),
])
@pytest.mark.parametrize("urlsafe", [True, False])
def test_rgb_pixels_equal_pil_convert(mode, format, save, urlsafe):
    text = _b64(_photo(67, 45).convert(mode), format, urlsafe, **save)
    pixels = decode_base64_image_rgb(text)
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, 45, 67)
    assert torch.equal(pixels, _pil_pixels(text))


def test_truncated_and_broken_jpegs_behave_like_pil():
    raw = base64.urlsafe_b64decode(_b64(_photo(64, 64), "JPEG"))
    truncated = base64.urlsafe_b64encode(raw[: len(raw) * 2 // 3]).decode()
    assert torch.equal(decode_base64_image_rgb(truncated), _pil_pixels(truncated))  # PIL decodes what is there
    with pytest.raises(ValueError, match="does not decode to an image"):
        decode_base64_image_rgb(base64.b64encode(raw[:2] + b"\x00" * 50 + raw[-2:]).decode())
    with pytest.raises(ValueError, match="invalid base64"):
        decode_base64_image_rgb("not base64 at all!")


@pytest.mark.parametrize("size", [(640, 480), (500, 375), (640, 427), (1280, 960), (57, 31), (96, 96), (300, 1000)])
@pytest.mark.parametrize("patch_image_size", [96, 480])
def test_patch_transform_matches_the_pil_pipeline(size, patch_image_size):
    """Within the parity fixture's tolerance (0.1) of the original's PIL resize + ToTensor + Normalize, and
    equal for PIL and tensor input."""
    text = _b64(_photo(*size, seed=sum(size)), "JPEG", quality=90)
    original = T.Compose([T.Resize((patch_image_size, patch_image_size), interpolation=T.InterpolationMode.BICUBIC),
                          T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])(decode_base64_image(text).convert("RGB"))
    transform = patch_resize_transform(patch_image_size)
    ours = transform(decode_base64_image_rgb(text))
    assert ours.dtype == torch.float32 and ours.is_contiguous() and ours.shape == original.shape
    assert (ours - original).abs().max() <= 0.1
    assert (ours - original).abs().mean() <= 0.5 * LEVEL  # differences are rounding, not a different filter
    assert torch.equal(ours, transform(decode_base64_image(text)))


def test_imagenet_normalisation_and_same_size_input():
    pixels = decode_base64_image_rgb(_b64(_photo(32, 32), "PNG"))
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    expected = (pixels.float() / 255 - mean) / std
    assert torch.allclose(patch_resize_transform(32, imagenet_default_mean_and_std=True)(pixels), expected, atol=1e-5)
    with pytest.raises(ValueError, match="RGB uint8"):
        patch_resize_transform(32)(pixels.float())


def _collate_in_worker(dataset, num_workers):
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=dataset.collater, num_workers=num_workers)
    return list(loader)


def test_worker_batches_arrive_in_shared_memory_with_the_same_values(make_task):
    rows = [[i, _b64(_photo(80 + 16 * i, 60, seed=i), "JPEG"), f"a photo number {i}"] for i in range(4)]
    _, dataset = make_task("caption", rows, selected_cols="0,1,2", patch_image_size=64)
    in_process, from_worker = _collate_in_worker(dataset, 0), _collate_in_worker(dataset, 1)
    for a, b in zip(in_process, from_worker):
        assert not a["net_input"]["patch_images"].is_shared() and b["net_input"]["patch_images"].is_shared()
        for key in ("patch_images", "src_tokens", "prev_output_tokens", "patch_masks"):
            assert torch.equal(a["net_input"][key], b["net_input"][key]), key
        assert torch.equal(a["target"], b["target"])


def test_stack_batch_and_batch_tensor_in_process():
    tensors = [torch.randn(3, 4, 5) for _ in range(3)]
    assert torch.equal(stack_batch(tensors), torch.stack(tensors))
    assert batch_tensor((2, 3), torch.bool).shape == (2, 3) and not batch_tensor((1,), torch.float32).is_shared()


@pytest.mark.parametrize("mode,save,expected", [("RGB", {}, (3, 41, 70)), ("RGB", {"progressive": True}, (3, 41, 70)),
                                                ("L", {}, (1, 41, 70)), ("CMYK", {}, (4, 41, 70))])
def test_jpeg_header_gives_components_and_size(mode, save, expected):
    raw = base64.urlsafe_b64decode(_b64(_photo(70, 41).convert(mode), "JPEG", **save))
    assert _jpeg_header(raw) == expected
    assert _jpeg_header(raw[:-2]) is None and _jpeg_header(b"\x89PNG" + raw[4:]) is None  # truncated, not a JPEG


def test_draft_decode_is_opt_in_and_stays_above_the_target_size(make_task):
    text = _b64(_photo(1024, 768), "JPEG", quality=90)
    drafted, full = decode_base64_image_rgb(text, draft_size=240), decode_base64_image_rgb(text)
    assert full.shape == (3, 768, 1024) and drafted.shape == (3, 384, 512)  # 1/2 scale keeps >= 240 on both sides
    transform = patch_resize_transform(240)
    assert (transform(drafted) - transform(full)).abs().mean() <= 2 * LEVEL  # same picture, not the same pixels

    _, dataset = make_task("caption", [[0, text, "a photo"]], selected_cols="0,1,2", patch_image_size=240)
    assert torch.equal(dataset[0]["patch_image"], transform(full))  # off by default
    _, dataset = make_task("caption", [[0, text, "a photo"]], selected_cols="0,1,2", patch_image_size=240,
                           jpeg_draft_decode=True)
    assert torch.equal(dataset[0]["patch_image"], transform(drafted))
