"""The ``vqa_gen`` task: its options, dataset and evaluation (VQA score)."""
import sys
from dataclasses import dataclass, field
from typing import Optional

from fairseq.tasks import register_task

from data.mm_data.vqa_gen_dataset import VqaGenDataset
from data.file_dataset import clean_text
from data.mm_data.vqa_gen_dataset import answer_scores, normalize_answer
from tasks.evaluation import best_tokens, decode_tokens, question_id, sample_ids, soft_scores
from tasks.ofa_task import CandidateAnswerConfig, OFAConfig, OFATask, PromptConfig

VAL_INFERENCE_TYPES = ("allcand", "beamsearch")


@dataclass
class VqaGenConfig(OFAConfig, CandidateAnswerConfig, PromptConfig):
    max_object_length: int = field(default=30, metadata={"help": "the maximum object sequence length"})
    unconstrained_training: bool = field(
        default=False,
        metadata={"help": "do not use Trie to constrain loss into the closed candidate answer set, default to False. "
                          "If set to True, then open-ended training is facilitated, ans2label_file and "
                          "ans2label_dict will not be used and inference type must be beamsearch"},
    )
    add_object: bool = field(default=False, metadata={"help": "add object to encoder"})
    uses_ema: Optional[bool] = field(default=False, metadata={"help": "validate with the EMA weights (--store-ema)"})
    val_inference_type: Optional[str] = field(
        default="allcand",
        metadata={"help": "inference type in validation (allcand or beamsearch), default to allcand"},
    )
    eval_args: Optional[str] = field(
        default='{"beam":5,"unnormalized":true,"temperature":1.0}',
        metadata={"help": "generation args as JSON string for inference, only activated when "
                          "--val-inference-type=beamsearch"},
    )


@register_task("vqa_gen", dataclass=VqaGenConfig)
class VqaGenTask(OFATask):
    """VQA as generation; answers constrained to ``ans2label`` unless ``--unconstrained-training``."""

    dataset_cls = VqaGenDataset
    generation_defaults = {"beam": 5, "unnormalized": True, "temperature": 1.0}
    modelscope_pipeline = ("visual-question-answering", "generation")
    request_text = "a question (--question)"
    request_label = "Question"
    tsv_columns = "0,5,2,3,4"
    annotation_keys = ("question",)
    metric_name = "vqa_score"

    def __init__(self, cfg: VqaGenConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        if cfg.val_inference_type not in VAL_INFERENCE_TYPES:
            raise ValueError(f"Unknown inference type encountered: {cfg.val_inference_type}, "
                             f"should be allcand or beamsearch.")
        if cfg.unconstrained_training and cfg.val_inference_type != "beamsearch":
            raise ValueError("For open-ended training, there is no fixed candidate answer set, "
                             "then inference type must be beamsearch")
        if not cfg.unconstrained_training:
            self.ans2label_dict = self.load_ans2label()
            self.build_constraint_trie(self.ans2label_dict.keys())
        #: ``beamsearch`` after the question prefix or ``allcand`` (score every candidate answer); validation
        #: decodes as --val-inference-type says, evaluate.py and prediction as they set it
        self.inference_type = cfg.val_inference_type

    def dataset_kwargs(self, split):
        return {**super().dataset_kwargs(split), "max_object_length": self.cfg.max_object_length,
                "add_object": self.cfg.add_object, "constraint_trie": self.constraint_trie,
                "prompt_type": self.cfg.prompt_type}

    @property
    def generates_at_validation(self):
        return self.cfg.val_inference_type == "beamsearch"

    def set_inference_type(self, kind: str) -> None:
        if kind not in VAL_INFERENCE_TYPES:
            raise ValueError(f"unknown VQA inference type {kind!r} (one of {', '.join(VAL_INFERENCE_TYPES)})")
        if kind == "allcand" and self.constraint_trie is None:
            raise ValueError("this VQA model was trained without a closed answer set (--unconstrained-training): "
                             "it cannot score all candidates; decode answers by beam search instead")
        self.inference_type = kind

    def eval_step(self, generator, models, sample, **kwargs):
        """Answers and their VQA soft scores: beam search after the question prefix (:attr:`inference_type`
        ``beamsearch``), else the best of all candidate answers; under :attr:`zero_shot`, unconstrained beam
        search without the prefix, as the original's zero-shot step."""
        if self.zero_shot:
            hypos = self.inference_step(generator, models, sample)
            answers = [decode_tokens(self, generator, best_tokens(hypos, i)).strip() for i in range(len(hypos))]
        elif self.inference_type == "beamsearch":
            prefix_tokens = sample["prefix_tokens"]
            hypos = self.inference_step(generator, models, sample, prefix_tokens=prefix_tokens)
            answers = []
            for i in range(len(hypos)):
                prefix_len = prefix_tokens[i].ne(self.vocab.pad).sum().item()
                answers.append(decode_tokens(self, generator, best_tokens(hypos, i)[prefix_len:]).strip())
        else:
            answers = self.best_candidate_answers(models[0], sample)
        results = [{"question_id": question_id(sample_id), "answer": answer}
                   for sample_id, answer in zip(sample_ids(sample), answers)]
        return results, soft_scores(sample, answers)

    def request_row(self, uid, image, request):
        return [uid, image, self.text_of(request), f"1.0|!+{self.any_candidate_answer()}", ""]

    def prediction_output(self, result, request):
        return {"answer": result["answer"]}

    @classmethod
    def rows_of_annotation(cls, item, uid, image, split, labels):
        """``question`` and ``answers`` ({answer: confidence} or a list of annotators' answers) or ``answer``."""
        answers = item.get("answers") or {item["answer"]: 1.0}
        if isinstance(answers, list):
            answers = answer_scores([normalize_answer(a) for a in answers])
        text = "&&".join(f"{float(s):.1f}|!+{clean_text(a)}" for a, s in answers.items())
        return [[uid, uid, clean_text(item["question"]), text, "", image]]

    @classmethod
    def modelscope_settings(cls, task_cfg, beam_search, answers):
        if task_cfg.get("add_object"):
            print("warning: the checkpoint was trained with --add-object: ModelScope's VQA pipeline has no detected "
                  "objects and leaves out the ' object: ...' suffix of its inputs, so its answers can differ from "
                  "predict.py's", file=sys.stderr)
        if answers is not None and (task_cfg.get("prompt_type") or "none") != "none":
            # ModelScope's VQA generation drops the decoder prompt; its traverse mode (our all-candidate scoring)
            # keeps it
            return "traverse"
        return super().modelscope_settings(task_cfg, beam_search, answers)
