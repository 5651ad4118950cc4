"""inference/draw.py: the pixels of a drawn prediction (image pasted, boxes in their colours, text band)."""
import textwrap

from PIL import Image

from inference.draw import describe, draw_prediction

RED, GREEN, WHITE, GREY = (230, 0, 0), (0, 200, 0), (255, 255, 255), (90, 90, 90)


def test_boxes_image_and_text_band_pixels():
    image = Image.new("RGB", (200, 100), GREY)
    canvas = draw_prediction(image, {"box": [10, 20, 60, 80], "label": "cat"}, truth_box=[100, 10, 150, 50])
    # one 12-px line of text under the image, plus a 6-px margin; the width is the image's (>= 160)
    assert canvas.size == (200, 100 + 12 + 6)
    px = canvas.load()
    line = max(1, 100 // 100)
    assert px[10, 50] == RED and px[60, 50] == RED and px[35, 20] == RED and px[35, 80] == RED  # predicted box
    assert px[11 + line, 50] == GREY  # outline only: the inside keeps the image
    assert px[100, 30] == GREEN and px[150, 30] == GREEN and px[125, 10] == GREEN  # true box
    assert px[5, 5] == GREY and px[199, 99] == GREY  # the rest of the image, pasted at (0, 0)
    band = [px[x, y] for x in range(200) for y in range(100, 118)]
    assert WHITE in band and any(p != WHITE for p in band), "the label written in black on a white band"
    assert all(p == WHITE for p in (px[x, y] for x in range(120, 200) for y in range(100, 118))), "short text"


def test_small_images_widen_and_long_text_wraps():
    canvas = draw_prediction(Image.new("L", (40, 30), 128), {"caption": "a " * 60}, text=None)
    assert canvas.mode == "RGB" and canvas.width == 160
    lines = (canvas.height - 30 - 6) // 12
    assert lines == len(textwrap.wrap("a " * 60, width=160 // 7)) and lines > 1
    assert canvas.getpixel((20, 15)) == (128, 128, 128) and canvas.getpixel((100, 15)) == WHITE


def test_describe_joins_caption_answer_and_label():
    assert describe({"caption": "a dog", "answer": "yes", "label": "entailment", "box": [0, 0, 1, 1]}) == \
        "a dog | yes | entailment"
    assert describe({"box": [0, 0, 1, 1]}) == ""
