"""Shared configuration and behaviour of every OFA task: dictionary, BPE, data files, sharding, batching, generators."""

import contextlib
import json
import logging
import math
import os
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import torch
from fairseq.data import FairseqDataset, iterators
from fairseq.data.encoders.gpt2_bpe import GPT2BPE
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics
from fairseq.tasks import FairseqTask, register_task
from omegaconf import DictConfig

from data.bert_bpe import BERT_CN_DIR, BertBPE
from data.images import DEFAULT_MAX_IMAGE_PIXELS
from data.ofa_dataset import OFADataset
from data.dictionary import BPE_DIR, VocabLayout, load_ofa_dictionary
from data.file_dataset import FileDataset
from tasks.evaluation import encode
from utils import metrics as metrics_utils
from utils import precision
from utils.option_checks import OptionError
from utils.safe_pickle import load_pickle
from utils.trie import Trie

logger = logging.getLogger(__name__)


class TaskFileNotFound(FileNotFoundError):
    """A file that a task option names is missing; the message names the flag that sets the option."""

    def __init__(self, option: str, path: str, message: Optional[str] = None):
        super().__init__(message or f"--{option.replace('_', '-')} {path} does not exist")
        self.option, self.path = option, path


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
    jpeg_draft_decode: bool = field(
        default=False,
        metadata={"help": "decode JPEG images at a reduced DCT scale that keeps them at least twice "
                          "--patch-image-size (faster on large photos; pixels differ from a full decode, so off "
                          "reproduces the original)"},
    )
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
#: fairseq's generation defaults, under the names of its generation options
FAIRSEQ_GENERATION_DEFAULTS: dict[str, Any] = {
    "beam": 5, "max_len_a": 0, "max_len_b": 200, "min_len": 1, "no_repeat_ngram_size": 0, "lenpen": 1.0,
    "unnormalized": False, "temperature": 1.0,
}


def resolve_bpe_dir(cfg) -> str:
    """``--bpe-dir``, else the vocabulary bundled for ``--bpe`` (checked here: setup_task reads it first)."""
    if cfg.bpe not in BPE_NAMES:
        raise ValueError(f"--bpe {cfg.bpe}: choose gpt2 (the default) or bert (OFA-CN)")
    return cfg.bpe_dir or (BERT_CN_DIR if cfg.bpe == "bert" else BPE_DIR)


@register_task("ofa", dataclass=OFAConfig)
class OFATask(FairseqTask):
    """Base task; a subclass names its ``dataset_cls`` and adds its options in :meth:`dataset_kwargs`."""

    dataset_cls: type[OFADataset] | None = None
    #: the generation flags of the task's run_scripts/<task>/evaluate_*.sh (fairseq's defaults elsewhere)
    generation_defaults: ClassVar[dict[str, Any]] = {}
    #: (ModelScope task and pipeline name, its gen_type: ``generation`` or ``traverse`` the candidates), if any
    modelscope_pipeline: ClassVar[tuple[str, str] | None] = None

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
        self.vocab = VocabLayout.of(tgt_dict, cfg.code_dict_size, cfg.num_bins)
        self.constraint_trie: Optional[Trie] = None
        #: evaluate a checkpoint trained for something else (``evaluate.py --zero-shot``), as the original's
        #: zero-shot steps: generators apply the vocabulary constraints to the log-probs and drop the answer trie
        self.zero_shot = False

    @property
    def bpe_dir(self) -> str:
        return resolve_bpe_dir(self.cfg)

    @classmethod
    def setup_task(cls, cfg: DictConfig, from_checkpoint: bool = False, **kwargs):
        """Load the shared source/target dictionary (text, ``<mask>``, codes, bins)."""
        dictionary = load_ofa_dictionary(resolve_bpe_dir(cfg), cfg.code_dict_size, cfg.num_bins)
        logger.info("dictionary: %d types", len(dictionary))
        try:
            return cls(cfg, dictionary, dictionary)
        except TaskFileNotFound as err:
            if not from_checkpoint:
                raise
            # evaluate.py and predict.py set a checkpoint's task options with --model-overrides, not --<option>
            raise TaskFileNotFound(err.option, err.path, f"the checkpoint's {err.option} {err.path} does not "
                                   f"exist: pass --model-overrides \"{{'{err.option}': 'PATH'}}\"") from None

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
            "jpeg_draft_decode": self.cfg.jpeg_draft_decode,
            "vocab": self.vocab,
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
        """``ans2label_file`` if given (see :func:`read_answers_file`), else the JSON of ``ans2label_dict``."""
        path = getattr(self.cfg, "ans2label_file", None)
        if not path:
            return json.loads(self.cfg.ans2label_dict)
        if not os.path.isfile(path):
            raise TaskFileNotFound("ans2label_file", path)
        return read_answers_file(path, "--ans2label-file")

    def encode_answer(self, answer: str) -> torch.Tensor:
        return self.tgt_dict.encode_line(self.bpe.encode(" " + answer), add_if_not_exist=False,
                                         append_eos=False).long()

    def build_constraint_trie(self, answers) -> None:
        """Trie of ``bos + answer + eos`` over the candidate answers; sets ``index2ans`` and ``answer_items``."""
        self.constraint_trie = Trie(self.vocab.eos)
        self.index2ans, self.answer_items = {}, []
        for i, answer in enumerate(answers):
            item = self.encode_answer(answer)
            self.index2ans[i] = answer
            self.answer_items.append(item)
            self.constraint_trie.insert([self.vocab.bos] + item.tolist() + [self.vocab.eos])

    def best_candidate_answers(self, model, sample) -> list[str]:
        """Score every candidate answer after each sample's decoder prompt, normalised over the tokens the answer
        trie allows at each position as the original does; the best answer per sample."""
        if self.constraint_trie is None:
            raise ValueError(f"{self.cfg._name}: no candidate answer set to score (--unconstrained-training); "
                             "decode answers with beam search instead")
        scores = model.score_answers_in_trie(encode(model, sample), sample["decoder_prompts"], self.answer_items,
                                             self.constraint_trie)
        return [self.index2ans[i] for i in scores.argmax(1).tolist()]

    # ---- model, generation ------------------------------------------------------------------------------------

    @property
    def generates_at_validation(self) -> bool:
        """Whether validation decodes with ``sequence_generator`` (built from ``eval_args`` in build_model)."""
        return self.metric_generates and self.scores_at_validation

    def build_model(self, cfg: FairseqDataclass, from_checkpoint: bool = False):
        model = super().build_model(cfg, from_checkpoint)
        if self.generates_at_validation:
            self.sequence_generator = self.build_generator([model], Namespace(**json.loads(self.cfg.eval_args)))
        if getattr(self.cfg, "scst", False):
            self.scst_generator = self.build_generator([model], Namespace(**json.loads(self.cfg.scst_args)))
        return model

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None,
                        prefix_allowed_tokens_fn=None):
        """fairseq's generator built with OFA's :class:`models.sequence_generator.SequenceGenerator`, the task's
        ``--constraint-range``, its candidate-answer trie and its :attr:`zero_shot` mode."""
        from models.sequence_generator import SequenceGenerator

        extra = {"constraint_range": self.cfg.constraint_range, "zero_shot": self.zero_shot,
                 **(extra_gen_cls_kwargs or {})}
        generator = super().build_generator(models, args, seq_gen_cls or SequenceGenerator, extra,
                                            prefix_allowed_tokens_fn)
        if self.constraint_trie is not None and not self.zero_shot:
            # set after construction, as the original does: the trie takes precedence over --constraint-range
            generator.constraint_trie = self.constraint_trie
        return generator

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False, **extra_kwargs):
        """As fairseq's, but the criterion receives ``update_num`` (OFA's drop-worst schedule needs it)."""
        from fairseq.optim.amp_optimizer import AMPOptimizer

        model.train()
        model.set_num_updates(update_num)
        amp = isinstance(optimizer, AMPOptimizer)  # --amp: autocast on any device (fairseq's is CUDA float16 only)
        with torch.autograd.profiler.record_function("forward"), \
                precision.autocast(precision.device_type_of(model)) if amp else contextlib.nullcontext():
            loss, sample_size, logging_output = criterion(model, sample, update_num=update_num)
        if ignore_grad:
            loss *= 0
        with torch.autograd.profiler.record_function("backward"):
            optimizer.backward(loss)
        return loss, sample_size, logging_output

    def valid_step(self, sample, model, criterion, **extra_kwargs):
        """The criterion's loss plus the sums of :attr:`metric_name` from :meth:`eval_step`, the step
        evaluate.py runs (on the EMA model with ``--uses-ema``)."""
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        if self.uses_ema:
            if extra_kwargs.get("ema_model") is None:
                raise ValueError("--uses-ema needs the trainer to pass ema_model (train with --store-ema)")
            model = extra_kwargs["ema_model"]
        model.eval()
        if self.scores_at_validation:
            with torch.no_grad():
                logging_output.update(self.valid_metrics(sample, model))
        return loss, sample_size, logging_output

    @property
    def uses_ema(self) -> bool:
        """``--uses-ema``: fairseq's ``Trainer.valid_step`` reads this to pass the EMA model as ``ema_model``."""
        return bool(getattr(self.cfg, "uses_ema", False))

    # ---- evaluation: the same steps for validation, evaluate.py and prediction -------------------------------

    #: the one metric name of the task: validation logs, ``--best-checkpoint-metric`` and evaluate.py's metrics
    metric_name: Optional[str] = None
    #: the task option that switches the validation metric on (``eval_acc`` ...); None: always on
    metric_flag: Optional[str] = None
    #: whether :meth:`eval_step` decodes with a generator (built for validation from ``--eval-args``)
    metric_generates: bool = False

    @property
    def scores_at_validation(self) -> bool:
        """Whether validation computes :attr:`metric_name`."""
        return self.metric_name is not None and (self.metric_flag is None or bool(getattr(self.cfg, self.metric_flag)))

    def eval_step(self, generator, models, sample, **kwargs) -> tuple[list[dict], Optional[list[float]]]:
        """Per-sample result dicts (the rows of ``{subset}_predict.json``) and per-sample scores (None when
        the metric is corpus-level) of one batch."""
        raise NotImplementedError(f"task '{self.cfg._name}' has no evaluation step")

    def sample_references(self, sample) -> Optional[list]:
        """Per-sample references that :meth:`compute_metrics` needs beyond the results (captions), else None."""
        return None

    def compute_metrics(self, records: list[dict]) -> dict[str, float]:
        """Final metrics from merged records (``result``, ``score`` and ``references`` of every sample): by
        default the mean score under :attr:`metric_name`."""
        scores = [record["score"] for record in records if record.get("score") is not None]
        return {self.metric_name: metrics_utils.mean(scores)} if scores and self.metric_name else {}

    def valid_metrics(self, sample, model) -> dict:
        """``_<metric>_sum``/``_<metric>_cnt`` of one valid batch, from :meth:`eval_step`."""
        results, scores = self.eval_step(getattr(self, "sequence_generator", None), [model], sample)
        if getattr(self.cfg, "eval_print_samples", False) and results:
            hypothesis, reference = self.example_of(results, sample)
            logger.info("example hypothesis: %s", hypothesis)
            if reference is not None:
                logger.info("example reference: %s", reference)
        if scores is None:
            scores = self.sample_scores(results, sample)
        return {f"_{self.metric_name}_sum": float(sum(scores)), f"_{self.metric_name}_cnt": len(scores)}

    def example_of(self, results: list[dict], sample: dict) -> tuple[Any, Any]:
        """The first sample's hypothesis and reference (None: not in the results), as ``--eval-print-samples``
        logs them at each validation batch."""
        first = results[0]
        return first.get("hyp", first), first.get("ref")

    def sample_scores(self, results: list, sample: dict) -> list:
        """Per-sample validation scores of tasks whose evaluation step leaves them to the corpus (caption, gigaword)."""
        raise NotImplementedError(f"{type(self).__name__} has no per-sample validation score")

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        name = self.metric_name
        if name is None:
            return
        count = sum(log.get(f"_{name}_cnt", 0) for log in logging_outputs)
        if count > 0:
            metrics.log_scalar(f"_{name}_sum", sum(log.get(f"_{name}_sum", 0) for log in logging_outputs))
            metrics.log_scalar(f"_{name}_cnt", count)
            # the sums are tensors after a distributed run's all-reduce
            metrics.log_derived(name, lambda meters: round(
                float(meters[f"_{name}_sum"].sum / meters[f"_{name}_cnt"].sum), 4))

    # ---- TSV files (dataset/builders.py) -----------------------------------------------------------------------

    #: the ``--selected-cols`` of the original's TSV layout, which dataset/builders.py writes
    tsv_columns: ClassVar[str | None] = None
    #: the keys (besides ``image``) of a JSON-lines annotation the task builds rows from (empty: none)
    annotation_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def rows_of_annotation(cls, item: dict, uid: str, image: str, split: str,
                           labels: dict[str, int]) -> list[list[str]]:
        """The TSV rows of one JSON-lines annotation ``item`` (``image``: its base64; ``labels``: class names
        numbered in order of appearance, for tasks that number them)."""
        raise NotImplementedError(f"{cls.__name__} builds no rows from annotations")

    # ---- converted model folders (tasks/hf_folder.py) ----------------------------------------------------------

    @classmethod
    def modelscope_settings(cls, task_cfg: dict, beam_search: dict, answers: Optional[dict]) -> str:
        """ModelScope's ``gen_type`` for a checkpoint of the task (trained with ``task_cfg``; ``answers``: its
        closed answer set or None), after adapting its generator arguments ``beam_search`` in place."""
        return cls.modelscope_pipeline[1]

    # ---- prediction (inference.OFAPredictor): a request in, a JSON line out -----------------------------------

    #: what a prediction request's text is to the task, for messages (None: the task takes no text)
    request_text: ClassVar[str | None] = None
    #: the label of the text field on serve.py's page (None: the task takes no text)
    request_label: ClassVar[str | None] = None
    #: whether a request may carry a text premise besides its text
    request_premise: ClassVar[bool] = False
    #: whether a request may replace the task's prompt by a free instruction
    request_instruction: ClassVar[bool] = False

    @classmethod
    def predicts(cls) -> bool:
        """Whether the task turns prediction requests into rows (it defines :meth:`request_row`)."""
        return cls.request_row is not OFATask.request_row

    def request_row(self, uid: str, image: str, request) -> list[str]:
        """The selected columns of the TSV row a prediction request stands for (``image``: its base64);
        ``ValueError`` when the request lacks what the task needs."""
        raise NotImplementedError(f"task '{self.cfg._name}' makes no rows from prediction requests")

    def prediction_output(self, result: dict, request) -> dict:
        """The JSON-line fields of one :meth:`eval_step` result for ``request``."""
        raise NotImplementedError(f"task '{self.cfg._name}' has no prediction output")

    def request_notice(self, request) -> Optional[str]:
        """A warning about a valid request whose prediction may disappoint (None: nothing to say)."""
        return None

    def text_of(self, request) -> str:
        """The request's text, which the task needs."""
        if not request.text:
            raise ValueError(f"task {self.cfg._name} needs {self.request_text}")
        return request.text

    def any_candidate_answer(self) -> str:
        """An answer of the closed set: rows built from requests need a training target, which prediction ignores."""
        return self.index2ans[0] if getattr(self, "index2ans", None) else "yes"

    def set_inference_type(self, kind: str) -> None:
        """How tasks with a choice of decodings decode at evaluation and prediction (VQA: ``beamsearch`` over
        the answer set or ``allcand`` scoring); the others decode one way and ignore it."""

    def max_positions(self):
        return self.cfg.max_source_positions, self.cfg.max_target_positions

    @property
    def source_dictionary(self):
        return self.src_dict

    @property
    def target_dictionary(self):
        return self.tgt_dict


def read_answers_file(path: str, what: str) -> dict:
    """An answer file as ``{answer: label}``: a pickle (read without executing code) or, when ``path`` ends in
    ``.json``, JSON; either holds an answer -> label dict or a list of answers (labelled by position)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} does not exist")
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            answers = json.load(f)
    else:
        answers = load_pickle(path, what)
    if isinstance(answers, list) and all(isinstance(a, str) for a in answers):
        return {answer: label for label, answer in enumerate(answers)}
    if isinstance(answers, dict) and all(isinstance(a, str) for a in answers):
        return answers
    raise ValueError(f"{what} {path}: expected a dict answer -> label or a list of answers, "
                     f"got {type(answers).__name__}")
