"""The base of every OFA dataset: text encoding, coordinate bins, decoder prompts, constraint masks, and the use
of images (:mod:`data.images`), transforms (:mod:`data.transforms`) and collation (:mod:`data.collate`) every
task shares; the per-task datasets are thin subclasses of :class:`OFADataset`."""
from __future__ import annotations

import copy
import importlib
import logging
import math
import re
import string

import numpy as np
import torch
from fairseq.data import FairseqDataset

from data.bert_bpe import BertBPE
from data.dictionary import VocabLayout
from data.collate import pad_batch, stack_batch
from data.file_dataset import FileDataset, RowError, SkippedRow, TsvRow, split_skipped, with_skipped
from data.images import DEFAULT_MAX_IMAGE_PIXELS, decode_base64_image, decode_base64_image_rgb
from data.transforms import PatchResizeTransform, patch_resize_transform

_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)


def strip_punctuation(text: str) -> str:
    """``text`` without ASCII punctuation, stripped (how the original cleans captions for training and CIDEr)."""
    return text.translate(_NO_PUNCTUATION).strip()


def finite_float(text: str) -> float:
    """``float(text)``, refusing nan and +-inf: they pass every range check and break far from their row."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text.strip()!r} is not a finite number")
    return value


def quantize(value: torch.Tensor | float, num_bins: int) -> int:
    """Bin index of a coordinate normalised to [0, 1] (``round(v * (num_bins - 1))``)."""
    return int((torch.as_tensor(value) * (num_bins - 1)).round())


def bins_to_text(values, num_bins: int) -> str:
    """``"<bin_a> <bin_b> ..."`` for normalised coordinates, the target format of grounding."""
    return " ".join(f"<bin_{quantize(v, num_bins)}>" for v in values)


def object_array(items: list) -> np.ndarray:
    """A 1-D numpy object array of ``items`` (ragged lists stay lists, unlike ``np.array`` on numpy >= 1.24)."""
    array = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        array[i] = item
    return array


logger = logging.getLogger(__name__)

PROMPT_TYPES = ("none", "src", "prev_output")


class OFADataset(FairseqDataset):
    """Turns :class:`FileDataset` rows into samples; subclasses implement :meth:`process_row`.

    A row that cannot be used raises :class:`RowError` (file, row, column); with ``skip_bad_rows`` it is
    logged (once per process) and becomes a :class:`SkippedRow`, which :meth:`collater` leaves out of the batch
    and lists under ``skipped_rows`` for the trainer's totals.
    """

    #: how many selected columns :meth:`process_row` accepts
    num_selected_cols: tuple[int, ...] = ()

    def __init__(
        self,
        split: str,
        dataset: FileDataset,
        bpe,
        src_dict,
        tgt_dict=None,
        max_src_length: int = 128,
        max_tgt_length: int = 30,
        patch_image_size: int = 224,
        imagenet_default_mean_and_std: bool = False,
        constraint_trie=None,
        prompt_type: str | None = "none",
        skip_bad_rows: bool = False,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        jpeg_draft_decode: bool = False,
        vocab: VocabLayout | None = None,
    ):
        self.split = split
        self.dataset = dataset
        self.bpe = bpe
        self.src_dict = src_dict
        self.tgt_dict = tgt_dict if tgt_dict is not None else src_dict
        self.vocab = vocab if vocab is not None else VocabLayout.of(self.tgt_dict)
        self.max_src_length = max_src_length
        self.max_tgt_length = max_tgt_length
        self.patch_image_size = patch_image_size
        self.imagenet_default_mean_and_std = imagenet_default_mean_and_std
        self.constraint_trie = constraint_trie
        self.prompt_type = prompt_type or "none"
        if self.prompt_type not in PROMPT_TYPES:
            raise ValueError(f"unknown prompt_type {prompt_type!r}; choose one of {PROMPT_TYPES}")
        self.skip_bad_rows = skip_bad_rows
        self.max_image_pixels = max_image_pixels
        # (file, row) skipped in this process, each counted once however often it is read
        self.skipped_rows: set[tuple[str, int]] = set()
        #: decode JPEGs at least twice ``patch_image_size`` at reduced DCT scale (``--jpeg-draft-decode``)
        self.jpeg_draft_decode = jpeg_draft_decode

        self.bos, self.eos, self.pad = src_dict.bos(), src_dict.eos(), src_dict.pad()
        self.bos_item = torch.LongTensor([self.bos])
        self.eos_item = torch.LongTensor([self.eos])
        self.patch_resize_transform = patch_resize_transform(patch_image_size, imagenet_default_mean_and_std)

        cols = getattr(dataset, "selected_col_ids", None)
        if self.num_selected_cols and cols is not None and len(cols) not in self.num_selected_cols:
            raise ValueError(
                f"{type(self).__name__} reads {' or '.join(map(str, self.num_selected_cols))} columns, but "
                f"selected_cols picks {len(cols)} ({','.join(map(str, cols))}) of {dataset.file_path}"
            )

    def __len__(self) -> int:
        return len(self.dataset)

    def __getstate__(self):
        # fairseq's GPT-2 encoder keeps the `regex` module as an attribute, which pickle refuses; drop it so
        # DataLoader workers started by spawn/forkserver can receive the dataset, and re-import it on arrival
        state = self.__dict__.copy()
        encoder = getattr(self.bpe, "bpe", None)
        if encoder is not None and hasattr(encoder, "re"):
            state["bpe"] = copy.copy(self.bpe)
            state["bpe"].bpe = copy.copy(encoder)
            del state["bpe"].bpe.re
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        encoder = getattr(self.bpe, "bpe", None)
        if encoder is not None and hasattr(encoder, "pat") and not hasattr(encoder, "re"):
            encoder.re = importlib.import_module("regex")

    @property
    def num_skipped(self) -> int:
        return len(self.skipped_rows)

    def __getitem__(self, index: int):
        try:
            return self.process_row(index, self.dataset[index])
        except RowError as e:
            if not self.skip_bad_rows:
                raise
            if (e.path, e.row) not in self.skipped_rows:
                self.skipped_rows.add((e.path, e.row))
                logger.warning("skipping bad row (%d skipped so far in this process): %s", self.num_skipped, e)
            return SkippedRow(e.path, e.row)

    def process_row(self, index: int, row: TsvRow) -> dict:
        """One sample dict (``source``, ``target``, ``prev_output_tokens``, ...) from the selected columns."""
        raise NotImplementedError

    def sample_from_fields(self, index: int, fields: list[str], source: str = "<fields>") -> dict:
        """:meth:`process_row` on ``fields`` given directly (prediction), in the selected columns' order;
        errors name ``source``."""
        return self.process_row(index, TsvRow(list(fields), source, index, list(range(len(fields)))))

    # ---- text -------------------------------------------------------------------------------------------------

    @property
    def chinese(self) -> bool:
        """Whether text is OFA-CN's (``--bpe bert``): tasks then use the original's Chinese prompts."""
        return isinstance(self.bpe, BertBPE)

    def encode_text(self, text: str, length: int | None = None, append_bos: bool = False,
                    append_eos: bool = False, use_bpe: bool = True) -> torch.Tensor:
        """BPE-encode ``text`` (or take it as dictionary symbols) into a LongTensor of ids."""
        s = self.tgt_dict.encode_line(
            line=self.bpe.encode(text) if use_bpe else text, add_if_not_exist=False, append_eos=False,
        ).long()
        if length is not None:
            s = s[:length]
        if append_bos:
            s = torch.cat([self.bos_item, s])
        if append_eos:
            s = torch.cat([s, self.eos_item])
        return s

    @staticmethod
    def _normalize(text: str, max_words: int) -> str:
        text = re.sub(r"\s{2,}", " ", text).rstrip("\n").strip(" ")
        words = text.split(" ")
        return " ".join(words[:max_words]) if len(words) > max_words else text

    def pre_question(self, question: str, max_ques_words: int) -> str:
        """Lower-case, drop leading punctuation, '-' and '/' to spaces, collapse spaces, cut to N words."""
        question = question.lower().lstrip(",.!?*#:;~").replace("-", " ").replace("/", " ")
        return self._normalize(question, max_ques_words)

    def pre_caption(self, caption: str, max_words: int) -> str:
        """As :meth:`pre_question`, also mapping ``<person>`` to ``person``."""
        caption = caption.lower().lstrip(",.!?*#:;~").replace("-", " ").replace("/", " ").replace("<person>", "person")
        return self._normalize(caption, max_words)

    # ---- images -----------------------------------------------------------------------------------------------

    def read_image(self, row: TsvRow, field: int):
        """The PIL image in base64 column ``field`` of ``row`` (a :class:`RowError` if it does not decode)."""
        return self._decode_field(row, field, lambda text: decode_base64_image(text, self.max_image_pixels))

    def read_image_pixels(self, row: TsvRow, field: int) -> torch.Tensor:
        """The image of :meth:`read_image` as RGB uint8 (3, H, W) pixels, decoded without PIL where possible."""
        draft_size = self.patch_image_size if self.jpeg_draft_decode else None
        return self._decode_field(row, field, lambda text: decode_base64_image_rgb(text, draft_size,
                                                                                   self.max_image_pixels))

    @staticmethod
    def _decode_field(row: TsvRow, field: int, decode):
        try:
            return decode(row[field])
        except ValueError as e:
            raise row.error(field, str(e)) from None

    def patch_image(self, row: TsvRow, field: int) -> dict:
        """``patch_image`` (3, S, S) and ``patch_mask`` for the image in column ``field``."""
        # the square resize takes pixels straight from the JPEG decoder; train augmentations want PIL images
        tensor_input = isinstance(self.patch_resize_transform, PatchResizeTransform)
        image = self.read_image_pixels(row, field) if tensor_input else self.read_image(row, field)
        return {"patch_image": self.patch_resize_transform(image), "patch_mask": torch.tensor([True])}

    # ---- decoder side -----------------------------------------------------------------------------------------

    def seq2seq_items(self, tgt_item: torch.Tensor, decoder_input: torch.Tensor | None = None) -> dict:
        """``target`` = answer + eos and ``prev_output_tokens`` = bos + answer (or bos + ``decoder_input``)."""
        decoder_input = tgt_item if decoder_input is None else decoder_input
        return {"target": torch.cat([tgt_item, self.eos_item]),
                "prev_output_tokens": torch.cat([self.bos_item, decoder_input])}

    def decoder_items(self, src_item: torch.Tensor, tgt_item: torch.Tensor, append_eos: bool = True) -> dict:
        """``prev_output_tokens``, ``target``, ``decoder_prompt`` (and ``constraint_mask``) for an answer.

        The decoder sees a prompt (``none``: bos, ``src``: the source, ``prev_output``: the source without eos)
        followed by the answer; only the answer (plus eos when ``append_eos``) is a target, prompt positions are
        padding. Classification tasks (GLUE) pass ``append_eos=False``: their one-token answer is predicted after
        the prompt and never fed back.
        """
        prompt = {"none": self.bos_item, "src": src_item, "prev_output": src_item[:-1]}[self.prompt_type]
        answer = torch.cat([tgt_item, self.eos_item]) if append_eos else tgt_item
        target = torch.cat([prompt[1:], answer])
        target[: len(target) - len(answer)] = self.pad
        items = {"prev_output_tokens": torch.cat([prompt, answer[:-1]]), "target": target, "decoder_prompt": prompt}
        if self.constraint_trie is not None:
            items["constraint_mask"] = self.constraint_mask(target, len(answer))
        return items

    def constraint_mask(self, target: torch.Tensor, answer_len: int) -> torch.Tensor:
        """(len(target), vocab) bool: the tokens the candidate-answer trie allows at each answer position."""
        mask = torch.zeros((len(target), len(self.tgt_dict)), dtype=torch.bool)
        start = len(target) - answer_len
        mask[start:] = self.constraint_trie.answer_masks(target[start:], len(self.tgt_dict), self.bos)
        return mask

    # ---- batching ---------------------------------------------------------------------------------------------

    collate_prefix_tokens = False  #: emit ``prefix_tokens`` (decoder prompts without bos), as the original VQA

    def collater(self, samples: list, pad_to_length=None) -> dict:
        """Merge samples into a fairseq batch with the original's keys (rows skipped as bad are left out and
        listed under ``skipped_rows``)."""
        samples, skipped = split_skipped(samples)
        if not samples:
            return with_skipped({}, skipped)
        return with_skipped(self._collate(samples), skipped)

    def _collate(self, samples: list) -> dict:
        first = samples[0]

        def merge(key):
            return pad_batch([s[key] for s in samples], self.pad)

        src_lengths = torch.LongTensor([s["source"].ne(self.pad).long().sum() for s in samples])
        net_input = {"src_tokens": merge("source"), "src_lengths": src_lengths}
        if "patch_image" in first:
            net_input["patch_images"] = stack_batch([s["patch_image"] for s in samples])
            net_input["patch_masks"] = torch.cat([s["patch_mask"] for s in samples])
        if "code_mask" in first:
            net_input["code_masks"] = torch.cat([s["code_mask"] for s in samples])
        net_input["prev_output_tokens"] = merge("prev_output_tokens")
        target = merge("target")
        batch = {
            "id": np.array([s["id"] for s in samples]),
            "nsentences": len(samples),
            "ntokens": sum(int(s["target"].ne(self.pad).sum()) for s in samples),
            "net_input": net_input,
            "target": target,
        }
        if "conf" in first:
            batch["conf"] = torch.cat([s["conf"] for s in samples], dim=0)
        if "ref_dict" in first:
            batch["ref_dict"] = object_array([s["ref_dict"] for s in samples])
        if "constraint_mask" in first:
            batch["constraint_masks"] = merge("constraint_mask")
        if "decoder_prompt" in first:
            batch["decoder_prompts"] = object_array([s["decoder_prompt"].tolist() for s in samples])
            if self.collate_prefix_tokens:
                batch["prefix_tokens"] = merge("decoder_prompt")[:, 1:]
        if "region_coord" in first:
            batch["w_resize_ratios"] = torch.stack([s["w_resize_ratio"] for s in samples], dim=0)
            batch["h_resize_ratios"] = torch.stack([s["h_resize_ratio"] for s in samples], dim=0)
            batch["region_coords"] = torch.stack([s["region_coord"] for s in samples], dim=0)
        if "target_str" in first:
            batch["target_strs"] = np.array([s["target_str"] for s in samples])
        if "code_image" in first:
            batch["code_images"] = np.array([s["code_image"] for s in samples])
        return batch

    def num_tokens(self, index: int) -> int:
        # sizes would need every row decoded; batches are formed by sentence count (see OFATask.get_batch_iterator)
        return self.max_src_length + self.max_tgt_length

    def size(self, index: int) -> tuple[int, int]:
        return self.max_src_length, self.max_tgt_length
