"""Unusable rows raise one clear error naming file, row and column, or are skipped and counted on request."""
import base64
import logging

import pytest

from data.file_dataset import RowError
from data.file_dataset import SkippedRow


def _caption_rows(b64_image, bad_image):
    return [[1, 0, "a cat", "", b64_image()], [2, 0, "a dog", "", bad_image], [3, 0, "a cow", "", b64_image()]]


GARBAGE_IMAGE = base64.urlsafe_b64encode(b"this is not an image at all").decode()


@pytest.mark.parametrize("bad_image,reason", [
    ("abc", "invalid base64"),
    ("iVBORw0K#GgoAAAA", "invalid base64"),
    (GARBAGE_IMAGE, "does not decode to an image"),
])
def test_bad_image_names_file_row_column(make_task, b64_image, bad_image, reason):
    _, dataset = make_task("caption", _caption_rows(b64_image, bad_image), selected_cols="0,4,2", patch_image_size=32)
    dataset[0]
    with pytest.raises(RowError, match=rf"data\.tsv: row 1 \(line 2\), column 4: .*{reason}"):
        dataset[1]


def test_wrong_column_count_through_the_task(make_task, b64_image):
    rows = _caption_rows(b64_image, b64_image())
    rows[2] = rows[2][:4]
    _, dataset = make_task("caption", rows, selected_cols="0,4,2", patch_image_size=32)
    with pytest.raises(RowError, match=r"row 2 \(line 3\): has 4 columns, expected 5"):
        dataset[2]


@pytest.mark.parametrize("region,reason", [
    ("10,10,80,40", "outside the 64x48 image"),
    ("-5,0,20,20", "outside"),
    ("30,10,20,40", "inverted"),
    ("1,2,3", "four numbers"),
    ("a,b,c,d", "four numbers"),
    ("nan,0,20,20", "'nan' is not a finite number"),
    ("0,0,inf,20", "'inf' is not a finite number"),
])
def test_bad_box_names_region_column(make_task, b64_image, region, reason):
    rows = [[1, 0, "left cat", "0,0,64,48", b64_image()], [2, 0, "the dog", region, b64_image()]]
    _, dataset = make_task("refcoco", rows, selected_cols="0,4,2,3", patch_image_size=32)
    dataset[0]
    with pytest.raises(RowError, match=rf"row 1 \(line 2\), column 3: .*{reason}"):
        dataset[1]


def test_nan_box_is_skipped_under_skip_bad_rows(make_task, b64_image):
    rows = [[1, 0, "left cat", "0,0,64,48", b64_image()], [2, 0, "the dog", "0,nan,20,20", b64_image()]]
    _, dataset = make_task("refcoco", rows, selected_cols="0,4,2,3", patch_image_size=32, skip_bad_rows=True)
    assert dataset.collater([dataset[0], dataset[1]])["skipped_rows"] == [SkippedRow(dataset.dataset.file_path, 1)]


def test_unknown_label_names_label_column(make_task, b64_image):
    rows = [[1, 0, b64_image(), "a cat", "a cat sits", "entailment"], [2, 0, b64_image(), "x", "y", "maybe?"]]
    _, dataset = make_task("snli_ve", rows, selected_cols="0,2,3,4,5", patch_image_size=32)
    with pytest.raises(RowError, match=r"row 1 \(line 2\), column 5: unknown label 'maybe\?'"):
        dataset[1]


def test_wrong_selected_cols_count_is_a_config_error(make_task, b64_image):
    with pytest.raises(ValueError, match="reads 3 columns, but selected_cols picks 2"):
        make_task("caption", _caption_rows(b64_image, b64_image()), selected_cols="0,4")


def test_skip_flag_drops_and_counts_bad_rows(make_task, b64_image, caplog):
    rows = _caption_rows(b64_image, "abc") + [[4, 0, "short row"]]
    _, dataset = make_task("caption", rows, selected_cols="0,4,2", patch_image_size=32, skip_bad_rows=True)
    with caplog.at_level(logging.WARNING):
        samples = [dataset[i] for i in range(len(dataset))]
    assert [isinstance(s, SkippedRow) for s in samples] == [False, True, False, True]
    assert [(s.row, s.path.endswith("data.tsv")) for s in samples[1::2]] == [(1, True), (3, True)]
    assert dataset.num_skipped == 2
    assert "2 skipped so far" in caplog.text and "row 1 (line 2), column 4" in caplog.text
    batch = dataset.collater(samples)
    assert batch["id"].tolist() == ["1", "3"] and batch["nsentences"] == 2
    assert batch["skipped_rows"] == [samples[1], samples[3]]
    # reading a row again (fairseq reads the first batch twice) neither counts nor logs it again
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert dataset.collater([dataset[1], dataset[3]]) == {"skipped_rows": [samples[1], samples[3]]}
    assert dataset.num_skipped == 2 and "skipping" not in caplog.text
    assert dataset.collater([None]) == {}


def _png_header_bomb(size: int = 30000) -> str:
    """Base64 of a greyscale PNG declaring size x size pixels (a decompression bomb's header; one row of data)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00" * (size + 1))) + chunk(b"IEND", b""))
    return base64.urlsafe_b64encode(png).decode()


def test_image_pixel_limit_names_row_and_flag(make_task, b64_image):
    rows = [[1, 0, "a cat", "", _png_header_bomb()]]
    _, dataset = make_task("caption", rows, selected_cols="0,4,2", patch_image_size=32)
    with pytest.raises(RowError, match=r"row 0 \(line 1\), column 4: image of 30000x30000 pixels is larger than "
                                       r"--max-image-pixels 89478485 \(raise the flag to accept it\)"):
        dataset[0]
    rows = [[1, 0, "a cat", "", b64_image(format="JPEG")], [2, 0, "a dog", "", b64_image()]]
    _, dataset = make_task("caption", rows, selected_cols="0,4,2", patch_image_size=32, max_image_pixels=3000)
    for i in range(2):  # 64x48 = 3072 pixels, JPEG (torchvision decoder) and PNG (PIL)
        with pytest.raises(RowError, match=rf"row {i} .*image of 64x48 pixels is larger than --max-image-pixels 3000"):
            dataset[i]
    _, dataset = make_task("caption", rows, selected_cols="0,4,2", patch_image_size=32, max_image_pixels=3000,
                           skip_bad_rows=True)
    assert dataset.collater([dataset[0], dataset[1]]) == {"skipped_rows": [SkippedRow(dataset.dataset.file_path, 0),
                                                                          SkippedRow(dataset.dataset.file_path, 1)]}
    _, dataset = make_task("caption", rows, selected_cols="0,4,2", patch_image_size=32, max_image_pixels=3072)
    assert dataset[0]["patch_image"].shape == (3, 32, 32)


def test_empty_training_caption_is_warned_once_then_counted(make_task, b64_image, caplog):
    rows = [[i, 0, "a cat" if i == 0 else " ?! ", "", b64_image()] for i in range(12)]
    _, dataset = make_task("caption", rows, split="train", selected_cols="0,4,2", patch_image_size=32)
    with caplog.at_level(logging.WARNING):
        samples = [dataset[i] for i in range(12)] + [dataset[1]]
    assert samples[1]["target"].tolist() == dataset.encode_text(" ").tolist() + [dataset.eos]  # no word
    warnings = [r.getMessage() for r in caplog.records if "empty caption" in r.getMessage()]
    assert len(warnings) == 2
    assert warnings[0].endswith("data.tsv: row 1 has an empty caption; it trains on a target without a word "
                                "(warned once; the count is logged at 10, 100, ... such rows)")
    assert warnings[1].endswith("data.tsv: 10 rows with an empty caption so far in this process")
    assert len(dataset.empty_caption_rows) == 11
