"""CLIP-rewarded SCST on the image_gen task: sampled codes -> VQGAN images -> CLIP reward -> policy gradient."""
import argparse
import json

import pytest
import torch
from fairseq.criterions import build_criterion
from fairseq.dataclass.utils import gen_parser_from_dataclass
from omegaconf import OmegaConf

import criterions  # noqa: F401  (registers the criterions)
from criterions.clip_scst_loss import ClipScstRewardCriterion, ClipScstRewardCriterionConfig
from models.text_to_image import ClipScorer, TextToImageTools, caption_of_source, codes_to_images

CONSTRAINT_RANGE = "50265,58457"  # the <code_i> ids of the 59457-symbol dictionary
CAPTIONS = ["a red car", "two dogs on the grass"]  # the rows of the image_gen_task fixture


@pytest.fixture(scope="module")
def scst(image_gen_task, small_ofa_model, valid_batch, code_image_size):
    scst_args = {"beam": 3, "min_len": 16, "max_len_a": 0, "max_len_b": 16, "sampling_topk": 256, "temperature": 1.0}
    task = image_gen_task(code_image_size, scst=True, scst_args=json.dumps(scst_args))
    model, sample = small_ofa_model(task, code_image_size), valid_batch(task)
    criterion = build_criterion(OmegaConf.create({"_name": "clip_scst_reward_criterion", "sentence_avg": False,
                                                  "ignore_prefix_size": 0, "constraint_range": CONSTRAINT_RANGE}), task)
    return task, model, sample, criterion


def test_built_from_the_registry_with_the_original_options(scst):
    criterion = scst[3]
    assert isinstance(criterion, ClipScstRewardCriterion)
    assert criterion.CLIP_REWARD_WEIGHT == 2.5 and criterion.allowed_tokens.tolist() == [0, 1, 2, 3, *range(50265, 58457)]
    parser = argparse.ArgumentParser()
    gen_parser_from_dataclass(parser, ClipScstRewardCriterionConfig())
    args = parser.parse_args(["--ignore-prefix-size", "1", "--constraint-range", CONSTRAINT_RANGE])
    assert args.ignore_prefix_size == 1 and args.constraint_range == CONSTRAINT_RANGE


def test_reward_is_weighted_clip_similarity_to_the_caption(scst, clip_file):
    task, _, sample, criterion = scst
    assert [caption_of_source(task, src) for src in sample["net_input"]["src_tokens"]] == CAPTIONS
    offset, eos = task.vocab.codes.start, task.vocab.eos
    assert offset == 50265
    codes = torch.randint(0, 8192, (4, 16), generator=torch.Generator().manual_seed(3))
    candidates = [torch.cat([row + offset, torch.tensor([eos])]) for row in codes]

    rewards = criterion.candidate_scores(sample, candidates)
    images = codes_to_images(TextToImageTools.of_task(task).vqgan, codes)
    expected = 2.5 * ClipScorer.from_file(clip_file).text_similarity(images, CAPTIONS)
    assert torch.allclose(rewards, expected, atol=1e-5)

    with pytest.raises(ValueError, match="expected 16 <code_i> tokens"):
        criterion.candidate_scores(sample, [c[:-3] for c in candidates])


def test_loss_backpropagates_into_the_model(scst):
    task, model, sample, criterion = scst
    torch.manual_seed(0)
    model.train()
    model.zero_grad()
    loss, sample_size, logging_output = criterion(model, sample)
    assert sample_size == logging_output["ntokens"] == len(CAPTIONS) * 3 * (16 + 1)
    assert logging_output["nsentences"] == len(CAPTIONS) * 3
    # each candidate is rewarded by 2.5 x a cosine similarity
    assert abs(logging_output["score"]) <= 2.5 * len(CAPTIONS) * 3
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.decoder.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_missing_paths_are_named(image_gen_task, code_image_size):
    task = image_gen_task(code_image_size, clip_model_path=None)
    with pytest.raises(ValueError, match="--clip-model-path"):
        TextToImageTools.of_task(task)
