"""The ``image_classify`` task: its options, dataset and evaluation (top-1 accuracy)."""
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq.tasks import register_task

from data.cv_data.image_classify_dataset import ImageClassifyDataset
from data.file_dataset import clean_text
from data.collate import pad_batch
from tasks.evaluation import encode, sample_ids, score_candidates, soft_scores
from tasks.ofa_task import CandidateAnswerConfig, OFAConfig, OFATask


@dataclass
class ImageClassifyConfig(OFAConfig, CandidateAnswerConfig):
    uses_ema: Optional[bool] = field(default=False, metadata={"help": "validate with the EMA weights (--store-ema)"})


@register_task("image_classify", dataclass=ImageClassifyConfig)
class ImageClassifyTask(OFATask):
    """ImageNet classification as generation of the label name, constrained to the label set; ``score`` is
    top-1 accuracy."""

    dataset_cls = ImageClassifyDataset
    modelscope_pipeline = ("image-classification", "traverse")
    tsv_columns = "0,2"
    annotation_keys = ("label",)
    metric_name = "score"

    def __init__(self, cfg: ImageClassifyConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.ans2label_dict = self.load_ans2label()
        self.build_constraint_trie(self.ans2label_dict.keys())
        self._label_batches = None

    def dataset_kwargs(self, split):
        return {**super().dataset_kwargs(split), "constraint_trie": self.constraint_trie}

    def label_batches(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Collated targets, decoder inputs and constraint masks of every label, ``valid_batch_size`` labels at
        a time (built on first use)."""
        if self._label_batches is None:
            bos, eos, pad = self.vocab.bos, self.vocab.eos, self.vocab.pad
            targets = [torch.cat([item, torch.LongTensor([eos])]) for item in self.answer_items]
            prev_outputs = [torch.cat([torch.LongTensor([bos]), item]) for item in self.answer_items]
            masks = [self.constraint_trie.answer_masks(target, self.vocab.size, bos) for target in targets]
            size = self.cfg.valid_batch_size
            self._label_batches = [
                (pad_batch(targets[i:i + size], pad), pad_batch(prev_outputs[i:i + size], pad),
                 pad_batch(masks[i:i + size], pad))
                for i in range(0, len(targets), size)
            ]
        return self._label_batches

    def eval_step(self, generator, models, sample, **kwargs):
        """Score every class name and keep the best (top-1)."""
        model = models[0]
        encoder_out = encode(model, sample)
        batch_size = sample["net_input"]["src_tokens"].size(0)
        device = sample["net_input"]["src_tokens"].device
        candidate_scores = [
            score_candidates(model, encoder_out, prev_output.repeat(batch_size, 1).to(device),
                             target.repeat(batch_size, 1).to(device), masks.repeat(batch_size, 1, 1).to(device),
                             num_candidates=target.size(0), pad=self.vocab.pad)
            for target, prev_output, masks in self.label_batches()
        ]
        answers = [self.index2ans[i] for i in torch.cat(candidate_scores, dim=-1).argmax(1).tolist()]
        results = [{"uniq_id": sample_id, "answer": answer} for sample_id, answer in zip(sample_ids(sample), answers)]
        return results, soft_scores(sample, answers)

    def request_row(self, uid, image, request):
        return [image, self.any_candidate_answer()]

    def prediction_output(self, result, request):
        return {"label": result["answer"]}

    @classmethod
    def rows_of_annotation(cls, item, uid, image, split, labels):
        """``label``, a class name numbered in order of appearance into ``labels`` (1-indexed in the row)."""
        name = clean_text(item["label"])
        return [[image, str(labels.setdefault(name, len(labels)) + 1), name]]
