"""OFA's mixed-task pretraining data: one vision-language row plus, every 8th row, text/image/detection samples."""
from __future__ import annotations

import random
import zlib

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

from data import transforms as OT
from data.file_dataset import FileDataset, TsvRow, split_skipped, with_skipped
from data.ofa_dataset import OFADataset, bins_to_text, finite_float
from data.transforms import ToNormalizedTensor, normalization
from data.pretrain_data.augment import LargeScaleJitter, ObjectCenterCrop, rand_augment, random_hflip, random_resize
from data.pretrain_data.text_infilling import TextInfilling

PAIR_TYPES = ("caption", "qa", "visual_grounding")
#: every EXTRA_EVERY-th vision-language row brings 2 text, 1 image and 1 detection sample (the original's rate)
EXTRA_EVERY = 8
#: the original resizes image-text pairs to a random shorter side in [patch_image_size, 480], longer side <= 672
MAX_RANDOM_RESIZE, MAX_RESIZE_LONG_SIDE = 480, 672
#: the loss weight (``conf``) the original gives text, image and detection samples
EXTRA_SAMPLE_CONF = 2.0

CAPTION_PROMPT = " what does the image describe?"
ITM_CAPTION_PROMPT = ' does the image describe " {} "?'
ITM_QA_PROMPT = ' what is the answer to question " {} ". is " {} "?'
GROUNDING_PROMPT = ' which region does the text " {} " describe?'
GROUNDED_CAPTION_PROMPT = "  what does the region describe? region:"  # two leading spaces, as the original
TEXT_INFILLING_PROMPT = ' what is the complete text of " "?'
IMAGE_INFILLING_PROMPT = " what is the image in the middle part?"
DETECTION_PROMPT = " what are the objects in the image?"


class UnifyDataset(OFADataset):
    """Vision-language rows (uniq-id, image, caption, question, answer, gt objects, dataset name, type) become
    captioning / VQA / grounding samples plus image-text matching (train) or grounded captioning; every 8th
    training row also yields text infilling (2), image infilling and detection samples from the side streams.

    ``__getitem__`` gives ``(pair_samples, extra_samples)``; :meth:`collater` returns one batch, or the list
    ``[pairs, extras]`` when extras are present (the criterion scores them as two views).
    """

    num_selected_cols = (8,)

    def __init__(
        self,
        *args,
        seed: int = 7,
        code_image_size: int = 128,
        max_image_size: int = 512,
        pure_text_dataset: FileDataset | None = None,
        pure_image_dataset: FileDataset | None = None,
        detection_dataset: FileDataset | None = None,
        all_object_list: list[str] | None = None,
        all_caption_list: list[str] | None = None,
        type2ans_dict: dict[str, list[str]] | None = None,
        mask_ratio: float = 0.3,
        random_ratio: float = 0.0,
        mask_length: str = "span-poisson",
        poisson_lambda: float = 3.0,
        replace_length: int = 1,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.seed = seed
        self.epoch = 1
        self.code_image_size = code_image_size
        self.pure_text_dataset = self._checked_stream(pure_text_dataset, 2, "--text-selected-cols")
        self.pure_image_dataset = self._checked_stream(pure_image_dataset, 3, "--image-selected-cols")
        self.detection_dataset = self._checked_stream(detection_dataset, 3, "--detection-selected-cols")

        self.all_object_list = all_object_list or []
        self.all_caption_list = all_caption_list or []
        self.type2ans_dict = type2ans_dict or {}
        self.ans2type_dict = {answer: answer_type for answer_type, answers in self.type2ans_dict.items()
                              if answer_type != "other" for answer in answers}
        if self.split == "train":
            self._check_negative_samples()

        self.text_infilling = TextInfilling(
            self.src_dict, self.bpe, mask_ratio=mask_ratio, random_ratio=random_ratio, mask_length=mask_length,
            poisson_lambda=poisson_lambda, replace_length=replace_length,
            random_token_range=(self.vocab.text.start, self.vocab.text.stop),
        )
        self.pos_tgt_item = self.encode_text(" yes")
        self.neg_tgt_item = self.encode_text(" no")
        # image infilling hides the centre (code_image_size square) of a 2 * code_image_size image
        self.mask_start, self.mask_end = code_image_size // 2, code_image_size * 3 // 2

        mean, std = normalization(self.imagenet_default_mean_and_std)
        self.resize_scales = list(range(self.patch_image_size, MAX_RANDOM_RESIZE + 1)) or [self.patch_image_size]
        self.center_crop = T.CenterCrop(self.patch_image_size)
        self.rand_augment = OT.SubsetRandAugment(2, 7)
        self.to_tensor = ToNormalizedTensor(mean, std)
        self.object_center_crop = ObjectCenterCrop((self.patch_image_size, self.patch_image_size))
        # boxes are divided by max_image_size before binning, for grounding and detection alike
        self.normalize_with_boxes = OT.Compose([OT.ToTensor(), OT.Normalize(mean, std, max_image_size)])
        self.detection_flip_p = 0.5
        self.detection_jitter = LargeScaleJitter(output_size=code_image_size * 2, aug_scale_min=1.0, aug_scale_max=1.5)

    @staticmethod
    def _checked_stream(dataset: FileDataset | None, num_cols: int, flag: str) -> FileDataset | None:
        if dataset is None:
            return None
        if len(dataset.selected_col_ids) != num_cols:
            raise ValueError(f"{dataset.file_path}: {flag} must pick {num_cols} columns, got "
                             f"{','.join(map(str, dataset.selected_col_ids))}")
        if len(dataset) == 0:
            raise ValueError(f"{dataset.file_path}: no rows for this process (slice {dataset.slice_id} of "
                             f"{dataset.slice_count})")
        return dataset

    def _check_negative_samples(self) -> None:
        if len(self.all_caption_list) < 1 or len(self.all_object_list) < 2:
            raise ValueError("image-text matching needs negative samples: --neg-sample-dir with all_captions.txt "
                             "(>= 1 caption) and object.txt (>= 2 objects)")
        for answer_type, answers in self.type2ans_dict.items():
            if len(answers) < 2:
                raise ValueError(f"type2ans.json: answer type {answer_type!r} needs at least 2 answers")
        if "other" not in self.type2ans_dict:
            raise ValueError("type2ans.json needs an 'other' answer list (negatives for untyped answers)")

    def set_epoch(self, epoch, **unused):
        self.epoch = epoch

    def sample_random(self, index: int) -> tuple[random.Random, torch.Generator]:
        """Random sources of one sample, seeded by (seed, epoch, row): samples do not depend on the worker or
        resume point, and the global generators (the model's dropout) are left alone."""
        seed = zlib.crc32(np.array([self.seed, self.epoch, self.dataset.start_pos + index], dtype=np.int64).tobytes())
        return random.Random(seed), torch.Generator().manual_seed(seed)

    def process_row(self, index: int, row: TsvRow) -> tuple[list[dict], list[dict]]:
        rng, generator = self.sample_random(index)
        pair_samples = self.process_image_text_pair(row, rng, generator)
        extra_samples = []
        if self.split == "train" and (index + 1) % EXTRA_EVERY == 0:
            group = self.extra_group(index)
            if self.pure_text_dataset is not None:
                text_rows = len(self.pure_text_dataset)
                extra_samples += [self.process_pure_text(self.pure_text_dataset[(2 * group + k) % text_rows],
                                                         generator) for k in range(2)]
            if self.pure_image_dataset is not None:
                image_row = self.pure_image_dataset[group % len(self.pure_image_dataset)]
                extra_samples.append(self.process_pure_image(image_row))
            if self.detection_dataset is not None:
                detection_row = self.detection_dataset[group % len(self.detection_dataset)]
                extra_samples.append(self.process_detection(detection_row, rng, generator))
        return pair_samples, extra_samples

    def extra_group(self, index: int) -> int:
        """Which group of side-stream rows row ``index`` takes: the streams advance by one group per 8 rows and
        continue across epochs (read cyclically), as the original's sequential readers."""
        per_epoch = len(self.dataset) // EXTRA_EVERY
        return (self.epoch - 1) * per_epoch + (index + 1) // EXTRA_EVERY - 1

    # ---- image-text pairs -------------------------------------------------------------------------------------

    def get_negative_caption(self, caption: str, gt_objects: str, rng: random.Random) -> str:
        """Another caption, or (40%) the caption with one of its objects swapped for another object."""
        if gt_objects.strip() and rng.random() > 0.6:
            gt_object = rng.choice(gt_objects.strip().split("&&"))
            negative_object = rng.choice(self.all_object_list[:-1])
            if negative_object == gt_object:
                negative_object = self.all_object_list[-1]
            return caption.replace(gt_object, negative_object)
        return rng.choice(self.all_caption_list)

    def get_negative_answer(self, answer: str, conf: float, rng: random.Random) -> str:
        """A wrong answer of the same type when the answer is confident (counts: +-1), else any 'other' answer."""
        prob = rng.random()
        if conf > prob + 0.1 and answer in self.ans2type_dict:
            answer_type = self.ans2type_dict[answer]
            if answer_type == "how many" and answer.isdigit() and prob > 0.5:
                # the original compares the string with the int 0 (always unequal); "0" becomes 1, not -1
                return str(int(answer) + rng.choice([-1, 1])) if answer != "0" else "1"
            candidates = self.type2ans_dict[answer_type]
        else:
            candidates = self.type2ans_dict["other"]
        negative = rng.choice(candidates[:-1])
        return candidates[-1] if negative == answer else negative

    def read_answers(self, row: TsvRow, field: int) -> dict[str, float]:
        """``conf|!+answer&&...`` of column ``field`` as {answer: confidence}."""
        answers = {}
        for item in row[field].split("&&"):
            conf, sep, answer = item.partition("|!+")
            try:
                if not sep:
                    raise ValueError("no '|!+'")
                answers[answer] = finite_float(conf)
            except ValueError:
                raise row.error(field, f"answer {item!r} is not 'confidence|!+answer'") from None
        return answers

    def read_boxes(self, row: TsvRow, field: int, with_labels: bool) -> tuple[torch.Tensor, list[str]]:
        """Boxes ``x0,y0,x1,y1[,object_id,object_name]`` joined by ``&&`` as an (N, 4) tensor and names."""
        boxes, labels = [], []
        for item in row[field].strip().split("&&"):
            parts = item.strip().split(",", 5)
            try:
                if len(parts) != (6 if with_labels else 4):
                    raise ValueError("wrong number of fields")
                boxes.append([finite_float(v) for v in parts[:4]])
            except ValueError:
                layout = "x0,y0,x1,y1,object_id,object_name" if with_labels else "x0,y0,x1,y1"
                raise row.error(field, f"box {item!r} is not {layout}") from None
            if with_labels:
                labels.append(parts[5])
        return torch.tensor(boxes), labels

    def pair_image(self, image: Image.Image, rng: random.Random, generator: torch.Generator) -> torch.Tensor:
        """Captioning/VQA images: random resize, centre crop, RandAugment (2 ops, magnitude 7)."""
        image, _ = random_resize(image, None, self.resize_scales, MAX_RESIZE_LONG_SIDE, rng)
        return self.to_tensor(rand_augment(self.center_crop(image), self.rand_augment, generator))

    def process_image_text_pair(self, row: TsvRow, rng: random.Random, generator: torch.Generator) -> list[dict]:
        uniq_id, _, caption, question, _, gt_objects, dataset_name, pair_type = row
        if pair_type not in PAIR_TYPES:
            raise row.error(7, f"unknown type {pair_type!r}; expected one of {', '.join(PAIR_TYPES)}")
        image = self.read_image(row, 1).convert("RGB")
        conf = 1.0
        pos_src_item = neg_src_item = None
        if pair_type == "visual_grounding":
            w, h = image.size
            boxes, _ = self.read_boxes(row, 4, with_labels=False)
            target = {"boxes": boxes[:1], "size": torch.tensor([h, w])}
            image, target = random_resize(image, target, self.resize_scales, MAX_RESIZE_LONG_SIDE, rng)
            patch_image, boxes_target = self.normalize_with_boxes(*self.object_center_crop(image, target))
            src_item = self.encode_text(GROUNDING_PROMPT.format(self.pre_caption(caption, self.max_src_length)))
            tgt_item = self.encode_text(bins_to_text(boxes_target["boxes"][0], self.vocab.num_bins), use_bpe=False)
        else:
            patch_image = self.pair_image(image, rng, generator)
            if pair_type == "caption":
                tgt_caption = self.pre_caption(caption, self.max_tgt_length)
                pos_caption = self.pre_caption(caption, self.max_src_length)
                neg_caption = None
                if self.split == "train":
                    negative = self.get_negative_caption(caption, gt_objects, rng)
                    neg_caption = self.pre_caption(negative, self.max_src_length)
                src_item = self.encode_text(CAPTION_PROMPT)
                tgt_item = self.encode_text(" {}".format(tgt_caption))
                pos_src_item = self.encode_text(ITM_CAPTION_PROMPT.format(pos_caption))
                if neg_caption is not None:
                    neg_src_item = self.encode_text(ITM_CAPTION_PROMPT.format(neg_caption))
            else:
                question = self.pre_question(question, self.max_src_length)
                answers = self.read_answers(row, 4)
                answer = max(answers, key=answers.get)
                conf = answers[answer]
                src_item = self.encode_text(" {}".format(question))
                tgt_item = self.encode_text(" {}".format(answer))
                pos_src_item = self.encode_text(ITM_QA_PROMPT.format(question, answer))
                if self.split == "train":
                    negative = self.get_negative_answer(answer, conf, rng)
                    neg_src_item = self.encode_text(ITM_QA_PROMPT.format(question, negative))

        example = {
            "id": uniq_id,
            "source": torch.cat([self.bos_item, src_item, self.eos_item]),
            "patch_image": patch_image,
            "patch_mask": torch.tensor([True]),
            **self.seq2seq_items(tgt_item),
            "conf": torch.tensor([conf]),
        }
        if pair_type == "caption" and dataset_name == "cc12m":
            # cc12m captions are noisy: their first two target tokens are not learned
            example["target"][:2] = self.pad
            example["target"][-1] = self.eos

        examples = [example]
        if pair_type == "visual_grounding":
            region_src = torch.cat([self.encode_text(GROUNDED_CAPTION_PROMPT), tgt_item])  # tgt_item: the bins
            region_tgt = self.encode_text(" {}".format(self.pre_caption(caption, self.max_tgt_length)))
            examples.append({**example, "source": torch.cat([self.bos_item, region_src, self.eos_item]),
                             **self.seq2seq_items(region_tgt), "conf": torch.tensor([1.0])})
        elif self.split == "train":
            matches = rng.random() >= 0.5
            src = pos_src_item if matches else neg_src_item
            answer = self.pos_tgt_item if matches else self.neg_tgt_item
            examples.append({**example, "source": torch.cat([self.bos_item, src, self.eos_item]),
                             **self.seq2seq_items(answer)})
        return examples

    # ---- text, image and detection streams --------------------------------------------------------------------

    def _extra_sample(self, uniq_id, src_item, tgt_item, patch_image, has_image: bool, is_code: bool) -> dict:
        return {
            "id": uniq_id,
            "source": torch.cat([self.bos_item, src_item, self.eos_item]),
            "patch_image": patch_image,
            "patch_mask": torch.tensor([has_image]),
            "code_mask": torch.tensor([is_code]),
            **self.seq2seq_items(tgt_item),
            "conf": torch.tensor([EXTRA_SAMPLE_CONF]),
        }

    def process_pure_text(self, row: TsvRow, generator: torch.Generator) -> dict:
        """Text infilling: the last 256 of (at most 512) tokens, masked, inside the prompt's quotes."""
        uniq_id, text = row
        text_item = self.encode_text(" {}".format(text.strip().lower()), length=512)[-256:]
        text_item = torch.cat([self.bos_item, text_item, self.eos_item])
        masked = self.text_infilling(text_item, generator)
        prompt = self.encode_text(TEXT_INFILLING_PROMPT)
        src_item = torch.cat([prompt[:-2], masked[1:-1], prompt[-2:]])  # the text goes between the quotes
        blank = torch.zeros((3, self.code_image_size * 2, self.code_image_size * 2))
        return self._extra_sample(uniq_id, src_item, text_item[1:-1], blank, has_image=False, is_code=False)

    def process_pure_image(self, row: TsvRow) -> dict:
        """Image infilling: the centre of a (2 * code_image_size)^2 image is blanked; the target is its codes."""
        image_id, _, code = row
        image = self.read_image(row, 1).convert("RGB")
        side = self.code_image_size * 2
        if image.size != (side, side):
            raise row.error(1, f"image infilling needs {side}x{side} images (2 * --code-image-size), "
                               f"got {image.size[0]}x{image.size[1]}")
        patch_image = self.to_tensor(image)
        patch_image[:, self.mask_start:self.mask_end, self.mask_start:self.mask_end] = 0
        try:
            codes = torch.tensor([int(v) for v in code.strip().split()], dtype=torch.long)
        except ValueError as e:
            raise row.error(2, f"image codes are not integers ({e})") from None
        if codes.numel() == 0 or codes.min() < 0 or codes.max() >= self.vocab.code_dict_size:
            raise row.error(2, f"image codes must be a non-empty list of ints in [0, {self.vocab.code_dict_size})")
        src_item = self.encode_text(IMAGE_INFILLING_PROMPT)
        return self._extra_sample(image_id, src_item, codes + self.vocab.codes.start, patch_image, has_image=True,
                                  is_code=True)

    def process_detection(self, row: TsvRow, rng: random.Random, generator: torch.Generator) -> dict:
        """Detection: every remaining box after augmentation as four bins followed by its BPE-encoded name."""
        image_id, _, _ = row
        image = self.read_image(row, 1).convert("RGB")
        w, h = image.size
        boxes, labels = self.read_boxes(row, 2, with_labels=True)
        target = {"boxes": boxes, "labels": labels, "size": torch.tensor([h, w])}
        image, target = random_hflip(image, target, self.detection_flip_p, rng)
        patch_image, target = self.normalize_with_boxes(*self.detection_jitter(image, target, generator))
        objects = [bins_to_text(box, self.vocab.num_bins) + " " + self.bpe.encode(" {}".format(label))
                   for box, label in zip(target["boxes"], target["labels"])]
        src_item = self.encode_text(DETECTION_PROMPT)
        tgt_item = self.encode_text(" ".join(objects), use_bpe=False)
        return self._extra_sample(image_id, src_item, tgt_item, patch_image, has_image=True, is_code=False)

    # ---- batching ---------------------------------------------------------------------------------------------

    def collater(self, samples: list, pad_to_length=None):
        """Image-text samples form one batch; text/image/detection samples a second one (``[pairs, extras]``)."""
        samples, skipped = split_skipped(samples)
        pairs = [example for pair_samples, _ in samples for example in pair_samples]
        extras = [example for _, extra_samples in samples for example in extra_samples]
        if not pairs:
            return with_skipped({}, skipped)
        batch = self._collate(pairs)
        return with_skipped([batch, self._collate(extras)] if extras else batch, skipped)
