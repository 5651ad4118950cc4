"""SCST: the loop's pieces by hand, and the original's loss and CIDEr-D score on the e2e caption checkpoint."""
import argparse
import copy
import importlib.util
import json

import pytest
import torch
from fairseq.criterions import build_criterion
from fairseq.dataclass.utils import gen_parser_from_dataclass
from omegaconf import OmegaConf

import criterions  # noqa: F401  (registers the criterions)
import models  # noqa: F401
from criterions.scst_loss import (
    ScstRewardCriterionConfig,
    cider_sentence,
    leave_one_out_advantage,
    repeat_each,
    scst_loss,
)
from tasks.mm_tasks.caption import CaptionConfig, CaptionTask

PAD = 1


def test_leave_one_out_advantage_by_hand():
    scores = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0], dtype=torch.float64)
    # baseline of each candidate: mean of the other two of its sample
    assert leave_one_out_advantage(scores, 3).tolist() == [-1.5, 0.0, 1.5, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="at least 2 candidates"):
        leave_one_out_advantage(scores, 1)


def test_scst_loss_by_hand():
    lprobs = torch.log(torch.tensor([[[0.5, 0.0, 0.5], [0.25, 0.0, 0.75]], [[0.1, 0.0, 0.9], [0.5, 0.0, 0.5]]]))
    target = torch.tensor([[0, 2], [2, PAD]])
    advantage = torch.tensor([2.0, -1.0], dtype=torch.float64)
    loss, ntokens = scst_loss(lprobs, target, advantage, padding_idx=PAD)
    expected = -2.0 * (torch.log(torch.tensor(0.5)) + torch.log(torch.tensor(0.75))) + torch.log(torch.tensor(0.9))
    assert ntokens == 3 and loss.dtype == torch.float64
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_candidates_are_rewarded_as_the_cached_tokens_expect():
    assert cider_sentence("  A dog, running.  ") == "A dog running <eos>"
    assert cider_sentence("") == " <eos>"


def test_repeat_each_repeats_per_sample_tensors_only():
    net_input = {"src_tokens": torch.tensor([[5, 2], [6, 2]]), "patch_masks": torch.tensor([True, False]),
                 "sample_patch_num": 3, "patch_images_2": None}
    repeated = repeat_each(net_input, 2)
    assert repeated["src_tokens"][:, 0].tolist() == [5, 5, 6, 6]
    assert repeated["patch_masks"].tolist() == [True, True, False, False]
    assert repeated["sample_patch_num"] == 3 and repeated["patch_images_2"] is None


def test_flags_have_the_original_names():
    parser = argparse.ArgumentParser()
    gen_parser_from_dataclass(parser, ScstRewardCriterionConfig())
    args = parser.parse_args(["--scst-cider-cached-tokens", "words.p", "--ignore-prefix-size", "1",
                              "--constraint-range", "4,50265"])
    assert args.scst_cider_cached_tokens == "words.p" and args.constraint_range == "4,50265"


# ---- the e2e caption checkpoint ---------------------------------------------------------------------------------


def caption_task(checkpoint, shared, **overrides):
    options = {**checkpoint["cfg"]["task"], "data": str(shared / "e2e_caption" / "test.tsv"), "bpe_dir": None,
               **overrides}
    cfg = OmegaConf.structured(CaptionConfig)
    return CaptionTask.setup_task(OmegaConf.merge(cfg, {k: v for k, v in options.items() if k in cfg}))


@pytest.fixture(scope="module")
def e2e(shared, tmp_path_factory):
    """Task (scst on), model (dropout 0), the valid batch of test.tsv, the original's numbers and the checkpoint."""
    path = tmp_path_factory.mktemp("e2e") / "checkpoint.pt"
    spec = importlib.util.spec_from_file_location("ckpt_pack", shared / "ckpt_pack.py")
    ckpt_pack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ckpt_pack)
    ckpt_pack.unpack(shared / "e2e_caption" / "checkpoint.packed.pt", path, shared / "rp_buckets.pt")
    # an original-format checkpoint carries argparse.Namespace objects, hence weights_only=False
    checkpoint = torch.load(path, weights_only=False)
    expected = torch.load(shared / "e2e_caption" / "scst" / "scst.pt", weights_only=True)
    task = caption_task(checkpoint, shared, **json.loads(expected["task_options"]))
    model_args = copy.copy(checkpoint["cfg"]["model"])
    for key, value in json.loads(expected["model_overrides"]).items():
        setattr(model_args, key, value)
    model = task.build_model(model_args)
    model.load_state_dict(checkpoint["model"], strict=True)
    task.load_dataset("valid")
    dataset = task.datasets["valid"]
    sample = dataset.collater([dataset[i] for i in range(len(dataset))])
    return task, model, sample, expected, checkpoint


def fresh(model):
    """A train-mode copy: train-mode BatchNorm moves running statistics, which the next generation would use."""
    return copy.deepcopy(model).train()


def scst_criterion(task, shared, sentence_avg):
    tokens = str(shared / "e2e_caption" / "scst" / "cider_cached_tokens.p")
    return build_criterion(argparse.Namespace(criterion="scst_reward_criterion", scst_cider_cached_tokens=tokens,
                                              sentence_avg=sentence_avg), task)


def test_parity_with_original_scst_loss_and_cider_reward(e2e, shared):
    task, model, sample, expected, _ = e2e
    model = fresh(model)
    # the fixture's sample_size is the candidate count: the original was run sentence-averaged
    loss, sample_size, log = scst_criterion(task, shared, sentence_avg=True)(model, sample)
    assert loss.item() == pytest.approx(expected["loss"], rel=1e-4)
    assert log["score"] == pytest.approx(expected["score"], rel=1e-6)
    assert sample_size == expected["sample_size"] and log["nsentences"] == expected["nsentences"]
    assert log["ntokens"] == expected["ntokens"]
    assert model.training, "the criterion must hand the model back in the mode it got it"
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_without_scst_generator_the_error_says_what_to_set(e2e, shared):
    _, model, sample, _, checkpoint = e2e
    task = caption_task(checkpoint, shared, scst=False)
    with pytest.raises(RuntimeError, match="--scst"):
        scst_criterion(task, shared, sentence_avg=True)(fresh(model), sample)
