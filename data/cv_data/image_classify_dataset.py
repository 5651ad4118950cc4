"""ImageNet-style rows: image, label name (``selected_cols`` 0,2 picks the synset words)."""
from __future__ import annotations

from data.ofa_dataset import OFADataset
from data.transforms import classify_train_transform


class ImageClassifyDataset(OFADataset):
    """Source `` what does the image describe?``; target the label name, constrained to the label set."""

    num_selected_cols = (2,)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.split == "train":
            self.patch_resize_transform = classify_train_transform(
                self.patch_image_size, self.imagenet_default_mean_and_std)

    def process_row(self, index, row):
        _, label_name = row
        src_item = self.encode_text(" what does the image describe?", append_bos=True, append_eos=True)
        tgt_item = self.encode_text(" {}".format(label_name))
        decoder = self.decoder_items(src_item, tgt_item)
        del decoder["decoder_prompt"]  # the original batch has no decoder_prompts for classification
        return {
            "id": index,
            "source": src_item,
            **self.patch_image(row, 0),
            **decoder,
            "ref_dict": {label_name: 1.0},
        }
