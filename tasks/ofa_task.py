"""Shared configuration and behaviour of every OFA task: dictionary, BPE, data files, sharding, batching, generators."""

import json
import logging
import math
import os
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq import search
from fairseq.data import FairseqDataset, iterators
from fairseq.data.encoders.gpt2_bpe import GPT2BPE
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics
from fairseq.tasks import FairseqTask, register_task
from omegaconf import DictConfig

from data.bert_bpe import BERT_CN_DIR, BertBPE
from data.data_utils import DEFAULT_MAX_IMAGE_PIXELS
from data.dictionary import BPE_DIR, load_ofa_dictionary
from data.file_dataset import FileDataset
from data.ofa_dataset import OFADataset
from utils.option_checks import OptionError
from utils.safe_pickle import load_pickle

logger = logging.getLogger(__name__)


class OFAGPT2BPE(GPT2BPE):
    """fairseq's GPT-2 BPE whose ``decode`` keeps ``<code_i>``/``<bin_i>`` and other ``<...>`` symbols as text,
    as the original's fairseq fork does (a model may generate them in any task)."""

    def decode(self, x: str) -> str:
        return self.bpe.decode([tok if tok.startswith("<") else int(tok) for tok in x.split()])


@dataclass
class OFAConfig(FairseqDataclass):
    data: Optional[str] = field(
        default=None,
        metadata={"help": "comma separated path to data list, will be iterated upon during epochs "
                          "in round-robin manner; valid data are always in the last"},
    )
    selected_cols: Optional[str] = field(default=None, metadata={"help": "selected cols"})
    bpe: Optional[str] = field(
        default=None, metadata={"help": "which bpe to use: gpt2 (the default) or bert (OFA-CN, Chinese)"}
    )
    bpe_dir: Optional[str] = field(
        default=None, metadata={"help": "bpe dir (default: utils/BPE, with --bpe bert utils/BERT_CN_dict)"}
    )
    max_source_positions: int = field(default=1024, metadata={"help": "max number of tokens in the source sequence"})
    max_target_positions: int = field(default=1024, metadata={"help": "max number of tokens in the target sequence"})
    max_src_length: int = field(default=128, metadata={"help": "the maximum src sequence length"})
    max_tgt_length: int = field(default=30, metadata={"help": "the maximum target sequence length"})
    code_dict_size: int = field(default=8192, metadata={"help": "code dict size"})
    patch_image_size: int = field(default=480, metadata={"help": "patch image size"})
    orig_patch_image_size: int = field(default=256, metadata={"help": "patch image size at pretraining"})
    num_bins: int = field(default=1000, metadata={"help": "number of quantization bins"})
    imagenet_default_mean_and_std: bool = field(default=False, metadata={"help": "imagenet normalize"})
    constraint_range: Optional[str] = field(default=None, metadata={"help": "constraint range"})
    skip_bad_rows: bool = field(
        default=False,
        metadata={"help": "log and skip TSV rows that cannot be decoded (wrong column count, bad base64 or image, "
                          "bad box/label) instead of stopping with an error naming file, row and column"},
    )
    max_image_pixels: int = field(
        default=DEFAULT_MAX_IMAGE_PIXELS,
        metadata={"help": "refuse images with more pixels than this before decoding them (a bad row; Pillow's "
                          "decompression-bomb limit by default); 0 for no limit"},
    )


@dataclass
class GenerationEvalConfig(FairseqDataclass):
    """Options of tasks that generate during validation."""
    eval_args: Optional[str] = field(
        default="{}",
        metadata={"help": 'generation args for BLUE or CIDEr scoring, e.g., \'{"beam": 4, "lenpen": 0.6}\', '
                          "as JSON string"},
    )
    eval_print_samples: bool = field(default=False, metadata={"help": "print sample generations during validation"})


@dataclass
class ScstConfig(FairseqDataclass):
    scst: bool = field(default=False, metadata={"help": "Self-critical sequence training"})
    scst_args: str = field(
        default="{}", metadata={"help": "generation args for Self-critical sequence training, as JSON string"}
    )


@dataclass
class CandidateAnswerConfig(FairseqDataclass):
    """Options of tasks whose answers come from a closed set (decoding constrained by a trie)."""
    ans2label_dict: Optional[str] = field(default='{"no": 0, "yes": 1}', metadata={"help": "answer to label dict"})
    ans2label_file: Optional[str] = field(default=None, metadata={"help": "path to load ans2label file"})
    valid_batch_size: int = field(default=20, metadata={"help": "valid batch size per step"})


@dataclass
class PromptConfig(FairseqDataclass):
    prompt_type: Optional[str] = field(
        default="none", metadata={"help": "decoder prompt: none, src (the source) or prev_output (source w/o eos)"}
    )


BPE_NAMES = (None, "gpt2", "bert")


def resolve_bpe_dir(cfg) -> str:
    """``--bpe-dir``, else the vocabulary bundled for ``--bpe`` (checked here: setup_task reads it first)."""
    if cfg.bpe not in BPE_NAMES:
        raise ValueError(f"--bpe {cfg.bpe}: choose gpt2 (the default) or bert (OFA-CN)")
    return cfg.bpe_dir or (BERT_CN_DIR if cfg.bpe == "bert" else BPE_DIR)


@register_task("ofa", dataclass=OFAConfig)
class OFATask(FairseqTask):
    """Base task; a subclass names its ``dataset_cls`` and adds its options in :meth:`dataset_kwargs`."""

    dataset_cls: type[OFADataset] | None = None

    def __init__(self, cfg: OFAConfig, src_dict, tgt_dict):
        super().__init__(cfg)
        self.src_dict = src_dict
        self.tgt_dict = tgt_dict
        # built here (the original waits for build_model) so datasets load without a model, e.g. in tests
        if cfg.bpe == "bert":
            self.bpe = BertBPE(os.path.join(self.bpe_dir, "vocab.txt"))
        else:
            self.bpe = OFAGPT2BPE(DictConfig({
                "gpt2_encoder_json": os.path.join(self.bpe_dir, "encoder.json"),
                "gpt2_vocab_bpe": os.path.join(self.bpe_dir, "vocab.bpe"),
            }))
        self.constraint_trie = None

    @property
    def bpe_dir(self) -> str:
        return resolve_bpe_dir(self.cfg)

    @classmethod
    def setup_task(cls, cfg: DictConfig, **kwargs):
        """Load the shared source/target dictionary (text, ``<mask>``, codes, bins)."""
        dictionary = load_ofa_dictionary(resolve_bpe_dir(cfg), cfg.code_dict_size, cfg.num_bins)
        logger.info("dictionary: %d types", len(dictionary))
        return cls(cfg, dictionary, dictionary)

    # ---- data -------------------------------------------------------------------------------------------------

    def data_path(self, split: str, epoch: int = 1) -> str:
        """Epoch k trains on the k-th file (round-robin over all but the last); other splits use the last."""
        if not self.cfg.data:
            raise ValueError("--data is not set (comma-separated TSV files; the last one is for validation)")
        paths = self.cfg.data.split(",")
        if split != "train":
            return paths[-1]
        if len(paths) < 2:
            raise ValueError(f"--data {self.cfg.data!r}: training needs train file(s) followed by a valid file")
        return paths[(epoch - 1) % (len(paths) - 1)]

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, slice_id: int | None = None,
                     slice_count: int | None = None, **kwargs):
        """Read this rank's contiguous slice (``slice_id = rank``, ``slice_count = world size`` by default)."""
        if self.dataset_cls is None:
            raise NotImplementedError(f"{type(self).__name__} names no dataset_cls; use a concrete task (caption...)")
        file_dataset = FileDataset(self.data_path(split, epoch), self.cfg.selected_cols,
                                   slice_id=slice_id, slice_count=slice_count)
        if file_dataset.get_total_row_count() == 0:
            raise OptionError(f"--data: the {split} file {file_dataset.file_path} is empty")
        self.datasets[split] = self.dataset_cls(split, file_dataset, self.bpe, self.src_dict, self.tgt_dict,
                                                **self.dataset_kwargs(split))

    def dataset_kwargs(self, split: str) -> dict:
        """Options passed to ``dataset_cls``; subclasses extend the dict."""
        return {
            "max_src_length": self.cfg.max_src_length,
            "max_tgt_length": self.cfg.max_tgt_length,
            "patch_image_size": self.cfg.patch_image_size,
            "imagenet_default_mean_and_std": self.cfg.imagenet_default_mean_and_std,
            "skip_bad_rows": self.cfg.skip_bad_rows,
            "max_image_pixels": self.cfg.max_image_pixels,
        }

    def get_batch_iterator(self, dataset, max_tokens=None, max_sentences=None, max_positions=None,
                           ignore_invalid_inputs=False, required_batch_size_multiple=1, seed=1, num_shards=1,
                           shard_id=0, num_workers=0, epoch=1, data_buffer_size=0, disable_iterator_cache=False,
                           skip_remainder_batch=False, grouped_shuffling=False, update_epoch_batch_itr=False):
        """Consecutive batches of ``max_sentences`` rows of this rank's slice (already sharded by the dataset);
        a rank with one row fewer gets an empty batch so every rank runs the same number of steps."""
        if not isinstance(dataset, FairseqDataset):
            raise TypeError(f"expected a FairseqDataset, got {type(dataset).__name__}")
        if not max_sentences:
            raise ValueError("OFA tasks batch by sentence count: set --batch-size (max_sentences)")
        dataset.set_epoch(epoch)
        batch_sampler = [list(range(i, min(i + max_sentences, len(dataset))))
                         for i in range(0, len(dataset), max_sentences)]
        total_row_count = dataset.dataset.get_total_row_count()
        num_batches = math.ceil(math.ceil(total_row_count / num_shards) / max_sentences)
        if len(batch_sampler) < num_batches:
            batch_sampler.append([])
        return iterators.EpochBatchIterator(
            dataset=dataset, collate_fn=dataset.collater, batch_sampler=batch_sampler, seed=seed,
            num_shards=1, shard_id=0, num_workers=num_workers, epoch=epoch, buffer_size=data_buffer_size,
        )

    # ---- candidate answers ------------------------------------------------------------------------------------

    def load_ans2label(self) -> dict:
        """``ans2label_file`` if given, else the JSON of ``ans2label_dict``: answer -> label.

        The file is a pickle (read without executing code) or, when it ends in ``.json``, JSON; either holds
        an answer -> label dict or a list of answers (labelled by position).
        """
        path = getattr(self.cfg, "ans2label_file", None)
        if not path:
            return json.loads(self.cfg.ans2label_dict)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--ans2label-file {path} does not exist")
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                answers = json.load(f)
        else:
            answers = load_pickle(path, "--ans2label-file")
        if isinstance(answers, list) and all(isinstance(a, str) for a in answers):
            return {answer: label for label, answer in enumerate(answers)}
        if isinstance(answers, dict) and all(isinstance(a, str) for a in answers):
            return answers
        raise ValueError(f"--ans2label-file {path}: expected a dict answer -> label or a list of answers, "
                         f"got {type(answers).__name__}")

    def encode_answer(self, answer: str) -> torch.Tensor:
        return self.tgt_dict.encode_line(self.bpe.encode(" " + answer), add_if_not_exist=False,
                                         append_eos=False).long()

    def build_constraint_trie(self, answers) -> None:
        """Trie of ``bos + answer + eos`` over the candidate answers; sets ``index2ans`` and ``answer_items``."""
        from utils.trie import Trie

        self.constraint_trie = Trie(self.tgt_dict.eos())
        self.index2ans, self.answer_items = {}, []
        for i, answer in enumerate(answers):
            item = self.encode_answer(answer)
            self.index2ans[i] = answer
            self.answer_items.append(item)
            self.constraint_trie.insert([self.tgt_dict.bos()] + item.tolist() + [self.tgt_dict.eos()])

    def build_candidate_batches(self) -> None:
        """``valid_answers_list`` / ``valid_constraint_masks_list``: the candidates and their (len + 1, vocab)
        masks in chunks of ``valid_batch_size``, for scoring every candidate at validation."""
        masks = []
        for item in self.answer_items:
            mask = torch.zeros((len(item) + 1, len(self.tgt_dict)), dtype=torch.bool)
            for i in range(len(item) + 1):
                mask[i, self.constraint_trie.get_next_layer([self.src_dict.bos()] + item[:i].tolist())] = True
            masks.append(mask)
        size = self.cfg.valid_batch_size
        self.valid_answers_list = [self.answer_items[i:i + size] for i in range(0, len(masks), size)]
        self.valid_constraint_masks_list = [masks[i:i + size] for i in range(0, len(masks), size)]

    # ---- model, generation, steps -----------------------------------------------------------------------------

    @property
    def generates_at_validation(self) -> bool:
        """Whether validation decodes with ``sequence_generator`` (built from ``eval_args`` in build_model)."""
        return False

    def build_model(self, cfg: FairseqDataclass, from_checkpoint: bool = False):
        model = super().build_model(cfg, from_checkpoint)
        if self.generates_at_validation:
            self.sequence_generator = self.build_generator([model], Namespace(**json.loads(self.cfg.eval_args)))
        if getattr(self.cfg, "scst", False):
            self.scst_generator = self.build_generator([model], Namespace(**json.loads(self.cfg.scst_args)))
        return model

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None,
                        prefix_allowed_tokens_fn=None):
        """A :class:`models.sequence_generator.SequenceGenerator` with fairseq's search options, the task's
        ``constraint_range`` and, for closed answer sets, its ``constraint_trie``."""
        if getattr(args, "score_reference", False):
            from fairseq.sequence_scorer import SequenceScorer
            return SequenceScorer(self.target_dictionary, compute_alignment=getattr(args, "print_alignment", False))
        from models.sequence_generator import SequenceGenerator

        search_strategy = self.build_search_strategy(args, prefix_allowed_tokens_fn)
        generator = (seq_gen_cls or SequenceGenerator)(
            models,
            self.target_dictionary,
            beam_size=getattr(args, "beam", 5),
            max_len_a=getattr(args, "max_len_a", 0),
            max_len_b=getattr(args, "max_len_b", 200),
            min_len=getattr(args, "min_len", 1),
            normalize_scores=not getattr(args, "unnormalized", False),
            len_penalty=getattr(args, "lenpen", 1),
            unk_penalty=getattr(args, "unkpen", 0),
            temperature=getattr(args, "temperature", 1.0),
            match_source_len=getattr(args, "match_source_len", False),
            no_repeat_ngram_size=getattr(args, "no_repeat_ngram_size", 0),
            search_strategy=search_strategy,
            constraint_range=self.cfg.constraint_range,
            **(extra_gen_cls_kwargs or {}),
        )
        if self.constraint_trie is not None:
            generator.constraint_trie = self.constraint_trie
        return generator

    def build_search_strategy(self, args, prefix_allowed_tokens_fn=None):
        """fairseq's search for ``--sampling``, diverse beams, ``--constraints``...; beam search by default."""
        sampling = getattr(args, "sampling", False)
        diverse_beam_groups = getattr(args, "diverse_beam_groups", -1)
        match_source_len = getattr(args, "match_source_len", False)
        diversity_rate = getattr(args, "diversity_rate", -1)
        if sum([sampling, diverse_beam_groups > 0, match_source_len, diversity_rate > 0]) > 1:
            raise ValueError("Provided Search parameters are mutually exclusive.")
        prefix_allowed_tokens_fn = prefix_allowed_tokens_fn or getattr(args, "prefix_allowed_tokens_fn", None)
        dictionary = self.target_dictionary
        if sampling:
            return search.Sampling(dictionary, getattr(args, "sampling_topk", -1), getattr(args, "sampling_topp", -1.0))
        if diverse_beam_groups > 0:
            return search.DiverseBeamSearch(dictionary, diverse_beam_groups, getattr(args, "diverse_beam_strength", 0.5))
        if match_source_len:
            return search.LengthConstrainedBeamSearch(dictionary, min_len_a=1, min_len_b=0, max_len_a=1, max_len_b=0)
        if diversity_rate > -1:
            return search.DiverseSiblingsSearch(dictionary, diversity_rate)
        if getattr(args, "constraints", False):
            return search.LexicallyConstrainedBeamSearch(dictionary, args.constraints)
        if prefix_allowed_tokens_fn:
            return search.PrefixConstrainedBeamSearch(dictionary, prefix_allowed_tokens_fn)
        return search.BeamSearch(dictionary)

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False, **extra_kwargs):
        """As fairseq's, but the criterion receives ``update_num`` (OFA's drop-worst schedule needs it)."""
        from fairseq.optim.amp_optimizer import AMPOptimizer

        model.train()
        model.set_num_updates(update_num)
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
        with torch.autograd.profiler.record_function("forward"), \
                torch.autocast(device_type=device_type, enabled=isinstance(optimizer, AMPOptimizer)):
            loss, sample_size, logging_output = criterion(model, sample, update_num=update_num)
        if ignore_grad:
            loss *= 0
        with torch.autograd.profiler.record_function("backward"):
            optimizer.backward(loss)
        return loss, sample_size, logging_output

    def valid_step(self, sample, model, criterion, **extra_kwargs):
        """The criterion's loss plus the task metric sums of :meth:`valid_metrics` (on the EMA model with
        ``--uses-ema``)."""
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        if getattr(self.cfg, "uses_ema", False):
            if extra_kwargs.get("ema_model") is None:
                raise ValueError("--uses-ema needs the trainer to pass ema_model (train with --store-ema)")
            model = extra_kwargs["ema_model"]
        model.eval()
        with torch.no_grad():
            logging_output.update(self.valid_metrics(sample, model))
        return loss, sample_size, logging_output

    @property
    def valid_metric(self) -> Optional[str]:
        """Name of the metric validation logs (what ``--best-checkpoint-metric`` selects); None: loss only."""
        return None

    def valid_metrics(self, sample, model) -> dict:
        """``_<metric>_sum``/``_<metric>_cnt`` of one valid batch, from the same per-task step as evaluate.py."""
        if self.valid_metric is None:
            return {}
        from utils.eval_utils import eval_step

        results, scores = eval_step(self, getattr(self, "sequence_generator", None), [model], sample)
        if scores is None:
            scores = self.sample_scores(results, sample)
        return {f"_{self.valid_metric}_sum": float(sum(scores)), f"_{self.valid_metric}_cnt": len(scores)}

    def sample_scores(self, results: list, sample: dict) -> list:
        """Per-sample scores for tasks whose evaluation step leaves them to the corpus (caption, gigaword)."""
        raise NotImplementedError(f"{type(self).__name__} has no per-sample validation score")

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        name = self.valid_metric
        if name is None:
            return
        count = sum(log.get(f"_{name}_cnt", 0) for log in logging_outputs)
        if count > 0:
            metrics.log_scalar(f"_{name}_sum", sum(log.get(f"_{name}_sum", 0) for log in logging_outputs))
            metrics.log_scalar(f"_{name}_cnt", count)
            metrics.log_derived(name, lambda meters: round(meters[f"_{name}_sum"].sum / meters[f"_{name}_cnt"].sum, 4))

    def max_positions(self):
        return self.cfg.max_source_positions, self.cfg.max_target_positions

    @property
    def source_dictionary(self):
        return self.src_dict

    @property
    def target_dictionary(self):
        return self.tgt_dict
