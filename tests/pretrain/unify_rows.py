"""Hand-made pretraining rows and negative samples shared by the tests in this folder."""
import base64
from io import BytesIO

from PIL import Image, ImageDraw


NEGATIVE_CAPTIONS = ["a green square", "two yellow stars"]
NEGATIVE_OBJECTS = ["square", "star", "heart"]
TYPE2ANS = {"what color": ["red", "green", "blue"], "how many": ["1", "2", "3"], "other": ["yes", "no", "left"]}


def image_b64(size=(120, 90), box=(30, 20, 60, 50), color=(30, 70, 220), format="PNG") -> str:
    """A light image with one filled rectangle, URL-safe base64 as in the TSV files."""
    image = Image.new("RGB", size, (240, 240, 240))
    ImageDraw.Draw(image).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=color)
    buffer = BytesIO()
    image.save(buffer, format=format)
    return base64.urlsafe_b64encode(buffer.getvalue()).decode("ascii")


def vl_row(uniq_id, pair_type, caption="", question="", answer="", gt_objects="", dataset_name="coco",
           image=None) -> list:
    return [uniq_id, image or image_b64(), caption, question, answer, gt_objects, dataset_name, pair_type]


