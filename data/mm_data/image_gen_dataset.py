"""Text-to-image rows: uniq-id, caption, image code (``(code_image_size / 8) ** 2`` space-separated ints)."""
from __future__ import annotations

import torch
from PIL import Image

from data.images import encode_image_base64
from data.ofa_dataset import OFADataset


class ImageGenDataset(OFADataset):
    """Source `` what is the complete image? caption: {}``; target the image as ``<code_i>`` tokens.

    Selected columns: (uniq-id, caption) for inference, (uniq-id, caption, code) or
    (uniq-id, image, caption, code); ``code_images`` carries the reference image (a black one when absent).
    """

    num_selected_cols = (2, 3, 4)

    def __init__(self, *args, code_image_size: int = 256, **kwargs):
        super().__init__(*args, **kwargs)
        self.num_codes = (code_image_size // 8) ** 2
        self.empty_image_base64 = encode_image_base64(Image.new("RGB", (code_image_size, code_image_size)))

    def read_codes(self, row, field: int) -> torch.Tensor:
        try:
            codes = torch.LongTensor([int(v) for v in row[field].strip().split()])
        except ValueError as e:
            raise row.error(field, f"image code is not space-separated integers ({e})") from None
        if codes.numel() != self.num_codes or (codes.numel() and not 0 <= int(codes.min()) <= int(codes.max()) < self.vocab.code_dict_size):
            raise row.error(field, f"image code must be {self.num_codes} integers in [0, {self.vocab.code_dict_size})")
        return codes

    def process_row(self, index, row):
        if len(row) == 2:
            (uniq_id, text), codes, image = row, torch.zeros(self.num_codes, dtype=torch.long), self.empty_image_base64
        elif len(row) == 3:
            (uniq_id, text, _), codes, image = row, self.read_codes(row, 2), self.empty_image_base64
        else:
            (uniq_id, image, text, _), codes = row, self.read_codes(row, 3)
        caption = " ".join(text.strip().split()[: self.max_src_length])
        src_item = self.encode_text(" what is the complete image? caption: {}".format(caption),
                                    append_bos=True, append_eos=True)
        return {
            "id": uniq_id,
            "source": src_item,
            "code_mask": torch.tensor([True]),
            "code_image": image,
            **self.seq2seq_items(codes + self.vocab.codes.start),
        }
