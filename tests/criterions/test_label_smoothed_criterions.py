"""Label-smoothed CE and encouraging loss: hand-computed values through the shared core, and parity with the
original criterions on the recorded batches with the ``parity_small.pt`` weights."""
import argparse
import copy
import json
import math

import numpy as np
import pytest
import torch
from fairseq.criterions import build_criterion
from fairseq.dataclass.utils import gen_parser_from_dataclass
from fairseq.logging import metrics

import criterions  # noqa: F401  (registers the criterions)
from criterions.label_smoothed_cross_entropy import constrain_logits
from criterions.label_smoothed_cross_entropy import (
    AdjustLabelSmoothedCrossEntropyCriterion,
    adjust_label_smoothed_loss,
    duplicate_for_rdrop,
    encouraging_bonus,
    label_smoothed_nll_loss,
    rdrop_kl_loss,
    select_target_tokens,
)
from criterions.label_smoothed_encouraging_loss import AdjustLabelSmoothedEncouragingLossConfig
from data.dictionary import VocabLayout, load_ofa_dictionary
from models.ofa import build_ofa_model

LN2 = math.log(2.0)
PAD, EOS = 1, 2


def lprobs_of(*rows):
    """[N, V] log-probabilities from rows of probabilities."""
    return torch.tensor(rows, dtype=torch.float64).log()


# ---- the shared core, on hand-made numbers -------------------------------------------------------------------


def test_label_smoothed_loss_by_hand():
    lprobs = lprobs_of([0.5, 0.25, 0.125, 0.125])
    loss, nll = label_smoothed_nll_loss(lprobs, torch.tensor([0]), epsilon=0.1)
    # nll = ln 2; smoothing mass eps/(V-1) on each of the sum -sum(log p) = 9 ln 2
    assert nll.item() == pytest.approx(LN2)
    assert loss.item() == pytest.approx((1 - 0.1 - 0.1 / 3) * LN2 + 0.1 / 3 * 9 * LN2)
    no_smoothing, _ = label_smoothed_nll_loss(lprobs, torch.tensor([2]), epsilon=0.0)
    assert no_smoothing.item() == pytest.approx(3 * LN2)


def test_smoothing_covers_only_allowed_tokens():
    lprobs = lprobs_of([0.5, 0.25, 0.125, 0.125])
    masks = torch.tensor([[True, True, False, False]])
    loss, _ = label_smoothed_nll_loss(lprobs, torch.tensor([0]), 0.1, constraint_masks=masks)
    # two allowed tokens: eps_i = eps / (2 - 1), smoothing sum = ln2 + 2 ln2
    assert loss.item() == pytest.approx(0.8 * LN2 + 0.1 * 3 * LN2, rel=1e-5)

    lprobs = torch.log_softmax(torch.arange(8, dtype=torch.float64), dim=-1)[None]
    loss, nll = label_smoothed_nll_loss(lprobs, torch.tensor([6]), 0.1, allowed_tokens=torch.tensor([0, 1, 2, 3, 6, 7]))
    allowed = lprobs[0, [0, 1, 2, 3, 6, 7]]
    eps_i = 0.1 / 5
    assert loss.item() == pytest.approx((1 - 0.1 - eps_i) * nll.item() - eps_i * allowed.sum().item(), rel=1e-5)


def test_constrain_logits_is_out_of_place_and_checks_shapes():
    logits = torch.zeros(1, 2, 10)
    masked = constrain_logits(logits, allowed_tokens=torch.tensor([0, 1, 2, 3, 6, 7]))
    assert torch.equal(logits, torch.zeros(1, 2, 10))
    allowed = torch.isfinite(masked[0, 0]).nonzero().flatten().tolist()
    assert allowed == [0, 1, 2, 3, 6, 7]
    masks = torch.zeros(1, 2, 10, dtype=torch.bool)
    masks[0, :, 5] = True
    assert torch.isfinite(constrain_logits(logits, masks)).sum() == 2
    with pytest.raises(ValueError, match="constraint_masks has shape"):
        constrain_logits(logits, masks[:, :1])


def test_constraint_range_is_parsed_by_the_vocabulary_layout():
    vocab = VocabLayout.of(load_ofa_dictionary(), code_dict_size=8192, num_bins=1000)
    assert (vocab.specials, vocab.text, vocab.codes, vocab.bins) == (
        range(4), range(4, 50265), range(50265, 58457), range(58457, 59457))
    assert vocab.mask == 50264 and vocab.parse_range("58457,59457") == vocab.bins
    assert vocab.constraint_tokens("6,8").tolist() == [0, 1, 2, 3, 6, 7]
    for bad in ("58457", "2,8", "8,6", "58457,60000"):
        with pytest.raises(ValueError, match="constraint-range"):
            vocab.parse_range(bad)
    with pytest.raises(ValueError, match="num-bins 999"):
        VocabLayout.of(load_ofa_dictionary(), num_bins=999)


def test_gradient_reaches_only_counted_positions():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7, requires_grad=True)
    target = torch.tensor([[5, 4, 6, EOS, PAD], [4, 3, EOS, PAD, PAD]])
    lprobs, tgt, _ = select_target_tokens(
        torch.log_softmax(logits, dim=-1), target, PAD, ignore_prefix_size=1, eos_idx=EOS
    )
    result = adjust_label_smoothed_loss(lprobs, tgt, epsilon=0.1)
    result.loss.backward()
    counted = torch.zeros(2, 5, dtype=torch.bool)
    counted[0, 1:3] = counted[1, 1] = True
    assert tgt.tolist() == [4, 6, 3] and result.ntokens == 3
    has_grad = logits.grad.abs().sum(-1) > 0
    assert torch.equal(has_grad, counted)


def test_ignore_eos_matches_loss_without_eos_targets():
    torch.manual_seed(1)
    lprobs = torch.log_softmax(torch.randn(2, 3, 6), dim=-1)
    target = torch.tensor([[4, 5, EOS], [3, EOS, PAD]])
    kept, tgt, _ = select_target_tokens(lprobs, target, PAD, eos_idx=EOS)
    assert tgt.tolist() == [4, 5, 3]
    with_eos, tgt_eos, _ = select_target_tokens(lprobs, target, PAD)
    assert tgt_eos.tolist() == [4, 5, EOS, 3, EOS]
    expected = -(lprobs[0, 0, 4] + lprobs[0, 1, 5] + lprobs[1, 0, 3])
    assert adjust_label_smoothed_loss(kept, tgt, 0.0).loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_drop_worst_drops_highest_loss_tokens_after_the_warmup():
    lprobs = torch.log(torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.05, 0.95], [0.7, 0.3]]))
    target = torch.zeros(4, dtype=torch.long)
    nll = -lprobs[:, 0]
    options = dict(drop_worst_ratio=0.25, drop_worst_after=10)
    before = adjust_label_smoothed_loss(lprobs, target, 0.0, update_num=10, **options)
    assert before.ntokens == 4 and before.loss.item() == pytest.approx(nll.sum().item())
    after = adjust_label_smoothed_loss(lprobs, target, 0.0, update_num=11, **options)
    assert after.ntokens == 3
    assert after.loss.item() == pytest.approx((nll.sum() - nll[2]).item())
    assert after.nll_loss.item() == pytest.approx(after.loss.item())


def test_drop_worst_with_rdrop_drops_both_copies_of_a_token():
    lprobs = torch.log(torch.tensor([[0.9, 0.1], [0.05, 0.95], [0.8, 0.2], [0.9, 0.1], [0.05, 0.95], [0.8, 0.2]]))
    target = torch.zeros(6, dtype=torch.long)
    result = adjust_label_smoothed_loss(
        lprobs, target, 0.0, update_num=1, drop_worst_ratio=0.3, use_rdrop=True
    )
    # the second token (p=0.05) is dropped from both copies; identical copies add no KL
    assert result.ntokens == 4
    assert result.loss.item() == pytest.approx(-2 * (math.log(0.9) + math.log(0.8)), rel=1e-6)


def test_rdrop_kl_is_symmetric_and_finite_under_constraints():
    p = torch.log(torch.tensor([[0.5, 0.5, 0.0]]))
    q = torch.log(torch.tensor([[0.25, 0.75, 0.0]]))
    masks = torch.tensor([[True, True, False]] * 2)
    kl = rdrop_kl_loss(torch.cat([p, q]), constraint_masks=masks)
    pp, qq = torch.tensor([0.5, 0.5]), torch.tensor([0.25, 0.75])
    expected = ((pp * (pp / qq).log()).sum() + (qq * (qq / pp).log()).sum()) / 2
    assert kl.item() == pytest.approx(expected.item(), rel=1e-5)
    assert rdrop_kl_loss(torch.cat([p, p]), constraint_masks=masks).item() == pytest.approx(0.0, abs=1e-7)


def test_duplicate_for_rdrop_doubles_batch_and_counts():
    sample = {"id": np.array([7, 8]), "nsentences": 2, "ntokens": 5, "conf": None,
              "net_input": {"src_tokens": torch.ones(2, 3), "sample_patch_num": 196}}
    doubled = duplicate_for_rdrop(sample)
    assert doubled["id"].tolist() == [7, 8, 7, 8] and doubled["ntokens"] == 10 and doubled["nsentences"] == 4
    assert doubled["net_input"]["src_tokens"].shape == (4, 3) and doubled["conf"] is None
    assert doubled["net_input"]["sample_patch_num"] == 196
    assert sample["ntokens"] == 5  # the caller's sample is left alone
    with pytest.raises(TypeError, match=r"sample\['bad'\]"):
        duplicate_for_rdrop({"bad": object()})


def test_encouraging_bonus_by_hand():
    lprobs = lprobs_of([0.5, 0.25, 0.25], [0.9, 0.05, 0.05])
    target = torch.tensor([0, 0])
    # p=0.5 is below log_end: log(1 - p); p=0.9 is above: the tangent at log_end
    tangent = (0.9 - 0.75) / (0.75 - 1) + math.log(0.25)
    assert encouraging_bonus(lprobs, target, 0.0, log_end=0.75).item() == pytest.approx(-LN2 + tangent)
    everything = sum(math.log(1 - p) for p in (0.5, 0.25, 0.25, 0.05, 0.05)) + tangent
    assert encouraging_bonus(lprobs, target, 0.3, log_end=0.75).item() == pytest.approx(
        0.7 * (-LN2 + tangent) + 0.3 / 3 * everything
    )
    assert encouraging_bonus(lprobs, target, 0.0, log_end=1.0).item() == pytest.approx(-LN2 + math.log(0.1))
    # the tangent meets the log at log_end
    at_end = lprobs_of([0.75, 0.25])
    assert encouraging_bonus(at_end, torch.tensor([0]), 0.0, 0.75).item() == pytest.approx(math.log(0.25))


def test_encouraging_loss_is_ce_plus_bonus_on_kept_tokens():
    torch.manual_seed(2)
    lprobs = torch.log_softmax(torch.randn(6, 5), dim=-1)
    target = torch.randint(0, 5, (6,))
    options = dict(epsilon=0.1, update_num=3, drop_worst_ratio=0.5)
    ce = adjust_label_smoothed_loss(lprobs, target, **options)
    encouraging = adjust_label_smoothed_loss(lprobs, target, **options, log_end=0.5)
    token_loss, _ = label_smoothed_nll_loss(lprobs, target, 0.1)
    kept = token_loss.argsort()[:3]
    assert encouraging.ntokens == ce.ntokens == 3
    assert (encouraging.loss - ce.loss).item() == pytest.approx(
        encouraging_bonus(lprobs[kept], target[kept], 0.1, 0.5).item(), rel=1e-5
    )
    assert torch.equal(encouraging.nll_loss, ce.nll_loss)


def test_drop_best_drops_lowest_loss_tokens():
    lprobs = torch.log(torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.6, 0.4]]))
    result = adjust_label_smoothed_loss(lprobs, torch.zeros(4, dtype=torch.long), 0.0, update_num=1,
                                        drop_best_ratio=0.25)
    assert result.ntokens == 3
    assert result.nll_loss.item() == pytest.approx(-(math.log(0.5) + math.log(0.2) + math.log(0.6)))


# ---- registration and options ---------------------------------------------------------------------------------


def test_flags_have_the_original_names():
    parser = argparse.ArgumentParser()
    gen_parser_from_dataclass(parser, AdjustLabelSmoothedEncouragingLossConfig())
    args = parser.parse_args([
        "--label-smoothing", "0.1", "--drop-worst-ratio", "0.2", "--drop-worst-after", "6000", "--ignore-eos",
        "--use-rdrop", "--reg-alpha", "2", "--sample-patch-num", "100", "--constraint-range", "58457,59457",
        "--log-end", "0.5", "--drop-best-ratio", "0.1", "--ignore-prefix-size", "1", "--report-accuracy",
    ])
    assert args.drop_worst_after == 6000 and args.log_end == 0.5 and args.constraint_range == "58457,59457"


def test_reduce_metrics_like_the_original():
    logs = [{"loss": torch.tensor(6.0), "nll_loss": torch.tensor(4.0), "ntokens": 10, "nsentences": 2,
             "sample_size": 2, "n_correct": 3, "total": 10}] * 2
    with metrics.aggregate() as agg:
        AdjustLabelSmoothedCrossEntropyCriterion.reduce_metrics(logs)
    values = agg.get_smoothed_values()
    assert values["loss"] == 3.0 and values["nll_loss"] == 2.0 and values["accuracy"] == 30.0
    assert values["ntokens"] == 20 and AdjustLabelSmoothedCrossEntropyCriterion.logging_outputs_can_be_summed()


# ---- parity with the original on the recorded batches -----------------------------------------------------------


@pytest.fixture(scope="module")
def parity(shared):
    """The ``parity_small.pt`` model (eval mode), a task-like holder of the OFA dictionary, the batches, the cases."""
    fixture = torch.load(shared / "parity_small.pt", weights_only=True)
    cfg = json.loads(fixture["config"])
    model = build_ofa_model(cfg["arch"], **{k: v for k, v in cfg.items() if k not in ("arch", "seed", "patch_image_size")})
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in fixture["state_dict"].items()})
    dictionary = load_ofa_dictionary()
    task = argparse.Namespace(source_dictionary=dictionary, target_dictionary=dictionary,
                              vocab=VocabLayout.of(dictionary))
    batches = {name: entry["batch"] for name, entry in torch.load(shared / "data_parity.pt", weights_only=True).items()}
    cases = torch.load(shared / "criterion_parity.pt", weights_only=True)["cases"]
    return model.eval(), task, batches, cases


def build(task, name, **options):
    # the fixture's sample_size is the batch size: the original was run sentence-averaged
    return build_criterion(argparse.Namespace(criterion=name, sentence_avg=True, **options), task)


def test_parity_with_original_criterions(parity):
    model, task, batches, cases = parity
    assert len(cases) >= 7
    for case in cases:
        criterion = build(task, case["criterion"], **json.loads(case["options"]))
        with torch.no_grad():
            loss, sample_size, log = criterion(model, batches[case["task"]], update_num=case["update_num"])
        where = f"{case['criterion']} {case['options']} on {case['task']}"
        assert loss.item() == pytest.approx(case["loss"], rel=1e-4), where
        assert log["nll_loss"].item() == pytest.approx(case["nll_loss"], rel=1e-4), where
        assert sample_size == case["sample_size"] and log["sample_size"] == case["sample_size"], where
        assert log["ntokens"] == case["ntokens"] and log["nsentences"] == 4, where


def test_token_averaged_sample_size_and_accuracy(parity):
    model, task, batches, _ = parity
    criterion = build_criterion(
        argparse.Namespace(criterion="adjust_label_smoothed_cross_entropy", label_smoothing=0.1, sentence_avg=False,
                           report_accuracy=True), task)
    with torch.no_grad():
        _, sample_size, log = criterion(model, batches["caption"])
    assert sample_size == 57 and log["total"] == 57
    # the argmax of the model's own logits, counted on the non-padding target tokens
    sample = batches["caption"]
    with torch.no_grad():
        logits = model(**sample["net_input"])[0]
    target = sample["target"]
    keep = target.ne(task.target_dictionary.pad())
    assert log["n_correct"] == logits.argmax(-1).eq(target)[keep].sum().item() == 1


def test_constrained_training_step_backpropagates(parity):
    """The original crashes here (it assigns into the model's output tuple); ours must train."""
    model, task, batches, _ = parity
    model = copy.deepcopy(model).train()  # train-mode BatchNorm would move the shared model's statistics
    criterion = build(task, "adjust_label_smoothed_encouraging_loss", label_smoothing=0.1, log_end=0.75)
    loss, _, _ = criterion(model, batches["vqa_gen"])
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_rdrop_in_eval_mode_doubles_the_loss(parity):
    """Without dropout the two R-Drop passes agree: zero KL, twice the summed loss, doubled counts."""
    model, task, batches, _ = parity
    sample = batches["refcoco"]
    options = dict(label_smoothing=0.1, constraint_range="58457,59457")
    with torch.no_grad():
        plain, _, plain_log = build(task, "adjust_label_smoothed_cross_entropy", **options)(model, sample)
        rdrop, size, log = build(task, "adjust_label_smoothed_cross_entropy", use_rdrop=True, **options)(model, sample)
    assert rdrop.item() == pytest.approx(2 * plain.item(), rel=1e-5)
    assert size == 8 and log["ntokens"] == 2 * plain_log["ntokens"]
    assert sample["net_input"]["src_tokens"].size(0) == 4  # the recorded batch is not modified


def test_two_view_batches_are_averaged_per_view(parity):
    """Pretraining passes two samples; the first is run on ``sample_patch_num`` random image patches."""
    model, task, batches, _ = parity
    sample = batches["caption"]
    with torch.no_grad():
        plain, _, _ = build(task, "adjust_label_smoothed_cross_entropy", label_smoothing=0.1)(model, sample)
        criterion = build(task, "adjust_label_smoothed_cross_entropy", label_smoothing=0.1, sample_patch_num=8)
        loss, sample_size, log = criterion(model, [sample, sample])
    assert sample_size == 1 and log["sample_size_v1"] == log["sample_size_v2"] == 4
    assert log["loss_v2"].item() == pytest.approx(plain.item(), rel=1e-5)
    assert log["loss_v1"].item() != pytest.approx(plain.item(), rel=1e-5)  # fewer patches, other loss
    assert loss.item() == pytest.approx((log["loss_v1"] + log["loss_v2"]).item() / 4, rel=1e-6)
    assert log["ntokens"] == 2 * 57 and "sample_patch_num" not in sample["net_input"]
