"""Encode the images of a TSV file into VQGAN codes (the original's ``run_scripts/image_gen/generate_code.py``).

Input rows (``--selected_cols`` picks the columns): ``uniq-id, image-id, image base64, text`` (text-image pairs)
or ``image-id, image base64`` (images only). Output rows: ``uniq-id, image-id, text, codes`` or
``image-id, codes``, codes space-separated (``(code_image_size / 8) ** 2`` of them).

    python -m scripts.generate_vqgan_code --file in.tsv --outputs out.tsv --selected_cols 0,1,2,3 \\
        --code_image_size 256 --vq_model vqgan --vqgan_model_path last.ckpt --vqgan_config_path model.yaml
"""
from __future__ import annotations

import argparse
import logging
from typing import List, Sequence

import torch
from PIL import Image
from torchvision import transforms

from data.images import decode_base64_image
from data.file_dataset import FileDataset
from models.vqgan import load_vqgan

logger = logging.getLogger(__name__)


def vqgan_transform(code_image_size: int) -> transforms.Compose:
    """RGB, shorter side to ``code_image_size`` (Lanczos), centre crop to a square, pixels in [-1, 1]."""
    # the original stops after the resize, so non-square images gave more codes than the task reads; the crop
    # keeps every row at (code_image_size / 8) ** 2 codes and changes nothing for square images
    return transforms.Compose([
        transforms.Lambda(lambda image: image.convert("RGB")),
        transforms.Resize(code_image_size, interpolation=transforms.InterpolationMode.LANCZOS),
        transforms.CenterCrop(code_image_size),
        transforms.ToTensor(),
        transforms.Lambda(lambda x: 2.0 * x - 1.0),
    ])


def read_image(row, field: int) -> Image.Image:
    try:
        return decode_base64_image(row[field])
    except ValueError as e:
        raise row.error(field, str(e)) from None


def encode_file(args: argparse.Namespace) -> int:
    """Write the codes of every row of ``args.file`` to ``args.outputs``; returns the number of rows."""
    if args.vq_model != "vqgan":
        raise ValueError(f"--vq_model must be 'vqgan', got {args.vq_model!r}")
    device = torch.device(args.device)
    vqgan = load_vqgan(args.vqgan_model_path, args.vqgan_config_path).to(device)
    dataset = FileDataset(args.file, args.selected_cols, slice_id=0, slice_count=1)
    if len(dataset.selected_col_ids) not in (2, 4):
        raise ValueError("--selected_cols must pick 4 columns (uniq-id, image-id, image, text) or 2 "
                         f"(image-id, image), got {args.selected_cols}")
    transform = vqgan_transform(args.code_image_size)
    image_field = 2 if len(dataset.selected_col_ids) == 4 else 1

    def flush(rows: List, writer) -> None:
        images = torch.stack([transform(read_image(row, image_field)) for row in rows]).to(device)
        with torch.no_grad():
            codes = vqgan.encode_images(images, sample=args.sample_codes).cpu()
        for row, row_codes in zip(rows, codes):
            text_columns = [row[0], row[1], row[3]] if len(row) == 4 else [row[0]]
            writer.write("\t".join(text_columns + [" ".join(map(str, row_codes.tolist()))]) + "\n")

    count, pending = 0, []
    with open(args.outputs, "w", encoding="utf-8") as writer:
        for row in dataset:
            pending.append(row)
            if len(pending) == args.batch_size:
                flush(pending, writer)
                count, pending = count + len(pending), []
                if count % args.log_interval < args.batch_size:
                    logger.info("encoded %d rows", count)
        if pending:
            flush(pending, writer)
            count += len(pending)
    logger.info("wrote %d rows to %s", count, args.outputs)
    return count


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", required=True, help="input TSV")
    parser.add_argument("--outputs", required=True, help="output TSV")
    parser.add_argument("--selected_cols", required=True,
                        help="4 columns (uniq-id,image-id,image,text) or 2 (image-id,image)")
    parser.add_argument("--code_image_size", type=int, required=True, help="image side in pixels (256: 1024 codes)")
    parser.add_argument("--vq_model", default="vqgan", help="only 'vqgan'")
    parser.add_argument("--vqgan_model_path", required=True, help="taming checkpoint, e.g. checkpoints/vqgan/last.ckpt")
    parser.add_argument("--vqgan_config_path", required=True, help="taming config, e.g. checkpoints/vqgan/model.yaml")
    parser.add_argument("--sample_codes", action="store_true",
                        help="draw each code from the quantizer's softmax (Gumbel-max) as taming's encoder does, "
                             "which the original's codes came from; default: the most likely code (deterministic)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--log_interval", type=int, default=100)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    encode_file(parse_args())
