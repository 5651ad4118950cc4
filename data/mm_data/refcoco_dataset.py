"""Visual grounding rows (RefCOCO/+/g): uniq-id, image, referring expression, region ``x0,y0,x1,y1``."""
from __future__ import annotations

import torch

from data.ofa_dataset import OFADataset, bins_to_text, finite_float
from data.transforms import grounding_transform

# boxes may overshoot the image border by rounding; anything further out is a broken row
BOX_TOLERANCE_PIXELS = 1.0
PROMPT = ' which region does the text " {} " describe?'
PROMPT_CN = '这段文字" {} "描述的是哪个区域？'


class RefcocoDataset(OFADataset):
    """Source `` which region does the text " {} " describe?`` (OFA-CN: ``这段文字" {} "描述的是哪个区域？``);
    target the box as four ``<bin_i>`` tokens.

    Resize ratios and the original region are kept for evaluation (boxes are predicted on the resized image).
    """

    num_selected_cols = (4,)

    def __init__(self, *args, max_image_size: int = 512, train_box_augment: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.positioning_transform = grounding_transform(
            self.patch_image_size, self.imagenet_default_mean_and_std, max_image_size,
            augment=train_box_augment and self.split == "train",
        )

    def read_region(self, row, field: int, width: int, height: int) -> torch.Tensor:
        """The ``x0,y0,x1,y1`` box of column ``field``, checked against the image size."""
        try:
            region = torch.tensor([finite_float(v) for v in row[field].strip().split(",")])
        except ValueError as e:
            raise row.error(field, f"region {row[field]!r} is not four numbers ({e})") from None
        if region.numel() != 4:
            raise row.error(field, f"region {row[field]!r} is not four numbers x0,y0,x1,y1")
        x0, y0, x1, y1 = region.tolist()
        tol = BOX_TOLERANCE_PIXELS
        if x0 > x1 or y0 > y1 or x0 < -tol or y0 < -tol or x1 > width + tol or y1 > height + tol:
            raise row.error(field, f"box {row[field]!r} is outside the {width}x{height} image or inverted")
        return region

    def process_row(self, index, row):
        uniq_id, _, text, _ = row
        image = self.read_image(row, 1).convert("RGB")
        w, h = image.size
        region = self.read_region(row, 3, w, h)
        target = {"boxes": region.unsqueeze(0), "size": torch.tensor([h, w]), "text": text}
        patch_image, patch_target = self.positioning_transform(image, target)
        resize_h, resize_w = patch_target["size"][0], patch_target["size"][1]

        src_caption = self.pre_caption(patch_target["text"], self.max_src_length)
        prompt = PROMPT_CN if self.chinese else PROMPT
        src_item = self.encode_text(prompt.format(src_caption), append_bos=True, append_eos=True)
        tgt_item = self.encode_text(bins_to_text(patch_target["boxes"][0], self.vocab.num_bins), use_bpe=False)
        return {
            "id": uniq_id,
            "source": src_item,
            "patch_image": patch_image,
            "patch_mask": torch.tensor([True]),
            **self.seq2seq_items(tgt_item),
            "w_resize_ratio": resize_w / w,
            "h_resize_ratio": resize_h / h,
            "region_coord": region,
        }
