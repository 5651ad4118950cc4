"""The ``snli_ve`` task: its options, dataset and evaluation (accuracy)."""
from dataclasses import dataclass, field
from typing import Optional

from fairseq.tasks import register_task

from data.mm_data.snli_ve_dataset import SnliVeDataset
from data.file_dataset import clean_text
from tasks.evaluation import sample_ids, soft_scores
from tasks.ofa_task import CandidateAnswerConfig, OFAConfig, OFATask, PromptConfig

#: the answers as the entailment labels predictions report
ENTAILMENT_LABELS = {"yes": "entailment", "no": "contradiction", "maybe": "neutral"}


@dataclass
class SnliVeConfig(OFAConfig, CandidateAnswerConfig, PromptConfig):
    ans2label_dict: Optional[str] = field(
        default='{"no": 0, "yes":1, "maybe": 2}', metadata={"help": "answer to label dict"}
    )
    add_caption: bool = field(default=False, metadata={"help": "add caption to encoder"})


@register_task("snli_ve", dataclass=SnliVeConfig)
class SnliVeTask(OFATask):
    """Visual entailment: yes / no / maybe, scored over the candidate answers; ``snli_score`` is accuracy."""

    dataset_cls = SnliVeDataset
    modelscope_pipeline = ("visual-entailment", "traverse")
    request_text = "a hypothesis (--text)"
    request_label = "Hypothesis"
    request_premise = True
    tsv_columns = "0,2,3,4,5"
    annotation_keys = ("hypothesis", "label")
    metric_name = "snli_score"

    def __init__(self, cfg: SnliVeConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.ans2label_dict = self.load_ans2label()
        self.build_constraint_trie(self.ans2label_dict.keys())

    def dataset_kwargs(self, split):
        return {**super().dataset_kwargs(split), "add_caption": self.cfg.add_caption,
                "constraint_trie": self.constraint_trie, "prompt_type": self.cfg.prompt_type}

    def eval_step(self, generator, models, sample, **kwargs):
        """Score "yes"/"no"/"maybe" after the decoder prompt and keep the best."""
        answers = self.best_candidate_answers(models[0], sample)
        results = [{"uniq_id": sample_id, "answer": answer} for sample_id, answer in zip(sample_ids(sample), answers)]
        return results, soft_scores(sample, answers)

    def request_row(self, uid, image, request):
        return [uid, image, self.text_of(request), request.premise or "", "entailment"]

    def request_notice(self, request):
        if self.cfg.add_caption and not request.premise:
            return ("this snli_ve model was trained with --add-caption (a premise before the hypothesis) and no "
                    "premise is given: the prompt lacks it (pass premise=... / --premise)")
        return None

    def prediction_output(self, result, request):
        return {"answer": result["answer"], "label": ENTAILMENT_LABELS.get(result["answer"], result["answer"])}

    @classmethod
    def rows_of_annotation(cls, item, uid, image, split, labels):
        """``hypothesis``, ``label`` and an optional ``premise``."""
        return [[uid, uid, image, clean_text(item["hypothesis"]), clean_text(item.get("premise", "")), item["label"]]]
