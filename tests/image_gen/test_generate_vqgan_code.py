"""Encoding a TSV of base64 images into VQGAN code rows (the input format of the image_gen task)."""
import pytest
import torch
from PIL import Image

from data.images import encode_image_base64
from models.vqgan import load_vqgan
from scripts.generate_vqgan_code import encode_file, parse_args, vqgan_transform


def gradient_image(width, height, seed):
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8, generator=generator)
    return Image.fromarray(pixels.numpy())


def run(tmp_path, vqgan_files, rows, selected_cols, code_image_size, batch_size=2):
    source, output = tmp_path / "in.tsv", tmp_path / "out.tsv"
    source.write_text("".join("\t".join(row) + "\n" for row in rows))
    args = parse_args(["--file", str(source), "--outputs", str(output), "--selected_cols", selected_cols,
                       "--code_image_size", str(code_image_size), "--vq_model", "vqgan",
                       "--vqgan_model_path", str(vqgan_files[0]), "--vqgan_config_path", str(vqgan_files[1]),
                       "--batch_size", str(batch_size), "--device", "cpu"])
    count = encode_file(args)
    return count, [line.split("\t") for line in output.read_text().splitlines()]


def test_text_image_pairs_become_id_text_code_rows(tmp_path, vqgan_files, code_image_size):
    images = [gradient_image(48, 32, seed) for seed in range(3)]  # not square: resized, then centre-cropped
    rows = [[str(100 + i), str(7 + i), encode_image_base64(image), f"caption {i}"] for i, image in enumerate(images)]
    count, written = run(tmp_path, vqgan_files, rows, "0,1,2,3", code_image_size)
    assert count == 3 and [row[:3] for row in written] == [["100", "7", "caption 0"], ["101", "8", "caption 1"],
                                                           ["102", "9", "caption 2"]]
    vqgan = load_vqgan(*vqgan_files)
    transform = vqgan_transform(code_image_size)
    for row, image in zip(written, images):
        codes = [int(v) for v in row[3].split()]
        assert len(codes) == (code_image_size // 8) ** 2
        assert codes == vqgan.encode_images(transform(image).unsqueeze(0))[0].tolist()


def test_image_only_rows_and_bad_rows(tmp_path, vqgan_files, code_image_size):
    rows = [["12455", encode_image_base64(gradient_image(32, 32, 0))]]
    count, written = run(tmp_path, vqgan_files, rows, "0,1", code_image_size)
    assert count == 1 and written[0][0] == "12455" and len(written[0][1].split()) == 16

    with pytest.raises(ValueError, match="in.tsv: row 0 .*column 1: invalid base64"):
        run(tmp_path, vqgan_files, [["1", "not an image!"]], "0,1", code_image_size)
    with pytest.raises(ValueError, match="--selected_cols must pick 4 columns"):
        run(tmp_path, vqgan_files, [["1", "2", "3"]], "0,1,2", code_image_size)
