"""Speed and memory options: mixed precision on CPU, channels-last image encoders, activation checkpointing,
the trie-restricted all-candidate scorer. Numbers, not timings: the benchmarks time them."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = [
    "--arch", "ofa_tiny", "--encoder-layers", "2", "--decoder-layers", "2", "--encoder-embed-dim", "64",
    "--decoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128", "--decoder-ffn-embed-dim", "128",
    "--encoder-attention-heads", "2", "--decoder-attention-heads", "2", "--resnet-type", "resnet18",
]


@pytest.fixture(scope="module")
def caption_data(tmp_path_factory) -> str:
    from dataset.make_tiny_dataset import make_tiny_dataset

    folder = tmp_path_factory.mktemp("caption")
    files = make_tiny_dataset(str(folder / "tiny"), seed=0, tasks=["caption"], image_size=48)["caption"]
    return f"{files['train']},{files['valid']}"


def build_trainer(data: str, *flags: str, gpu: bool = False):
    """A caption Trainer of a shrunk ofa_tiny on CPU (or GPU), seeded so every call starts from the same weights."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from trainer import Trainer
    from tasks.loading import register_ofa_components

    register_ofa_components()
    args = options.parse_args_and_arch(options.get_training_parser(), [
        data, "--task", "caption", *TINY_MODEL, "--selected-cols", "0,4,2", "--patch-image-size", "32",
        "--max-src-length", "20", "--max-tgt-length", "12", "--criterion", "adjust_label_smoothed_cross_entropy",
        "--label-smoothing", "0.1", "--optimizer", "adam", "--lr", "1e-4", "--batch-size", "4",
        *([] if gpu else ["--cpu"]), "--num-workers", "0", "--seed", "1", "--dropout", "0",
        "--attention-dropout", "0", *flags,
    ])
    cfg = convert_namespace_to_omegaconf(args)
    torch.manual_seed(1)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    trainer = Trainer(cfg, task, model, task.build_criterion(cfg.criterion))
    batches = trainer.get_train_iterator(epoch=1).next_epoch_itr(shuffle=False)
    return trainer, batches


def train_losses(data: str, steps: int, *flags: str) -> tuple[list[float], object]:
    trainer, batches = build_trainer(data, *flags)
    return [trainer.train_step([next(batches)])["loss"] for _ in range(steps)], trainer


def test_amp_trains_on_cpu_close_to_fp32_without_loss_scaling(caption_data, caplog):
    with caplog.at_level(logging.INFO, logger="trainer"):
        losses, trainer = train_losses(caption_data, 2, "--amp")
    assert "training precision: amp: bfloat16 autocast on cpu" in caplog.text
    reference, _ = train_losses(caption_data, 2)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses == pytest.approx(reference, rel=0.02)  # (logged losses are rounded: they may be equal)
    scaler = trainer.optimizer.scaler  # bfloat16 has fp32's range: a constant scale that only skips inf steps
    assert scaler.is_enabled() and scaler.get_scale() == 1.0 and scaler._device == "cpu"


def test_amp_loss_scale_divides_the_gradients_out_once(caption_data):
    """A float16-style loss scale (here 1024, exact in binary) leaves an SGD update as it is without scaling:
    fairseq's AMPOptimizer unscaled twice (once in clip_grad_norm, again in its step)."""
    updated = []
    for scale in (1.0, 1024.0):
        trainer, batches = build_trainer(caption_data, "--amp", "--optimizer", "sgd", "--lr", "0.5")
        trainer.optimizer._grad_scaler = torch.amp.GradScaler("cpu", init_scale=scale)
        before = [p.detach().clone() for p in trainer.model.parameters()]
        trainer.train_step([next(batches)])
        assert trainer.optimizer.scaler.get_scale() == scale  # no overflow: the step was taken
        updated.append([p.detach() - b for p, b in zip(trainer.model.parameters(), before)])
    largest = max(u.abs().max() for u in updated[0])
    assert largest > 1e-3
    assert max((a - b).abs().max() for a, b in zip(*updated)) <= 1e-6 * largest


def test_bf16_training_without_gpu_points_to_amp(caption_data):
    from training.precision import TrainingSetupError

    with pytest.raises(TrainingSetupError, match="use --amp"):
        build_trainer(caption_data, "--bf16")


@pytest.mark.slow
def test_evaluate_with_amp_on_cpu_casts_the_model_once(shared, tmp_path):
    """bfloat16 inference on CPU: the e2e checkpoint still writes the original's captions."""
    import importlib.util
    import json
    import subprocess
    import sys

    spec = importlib.util.spec_from_file_location("ckpt_pack", shared / "ckpt_pack.py")
    ckpt_pack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ckpt_pack)
    e2e, checkpoint = shared / "e2e_caption", tmp_path / "checkpoint.pt"
    ckpt_pack.unpack(str(e2e / "checkpoint.packed.pt"), str(checkpoint), str(shared / "rp_buckets.pt"))
    overrides = repr({"data": str(e2e / "test.tsv"), "bpe_dir": str(REPO / "utils" / "BPE"), "eval_cider": False,
                      "selected_cols": "0,4,2"})
    proc = subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), str(e2e / "test.tsv"), f"--path={checkpoint}",
         f"--user-dir={REPO}", "--task=caption", "--batch-size=2", "--seed=7", "--gen-subset=test",
         f"--results-path={tmp_path}", "--beam=5", "--max-len-b=16", "--no-repeat-ngram-size=3", "--cpu",
         "--num-workers=0", "--amp", f"--model-overrides={overrides}"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "inference precision: bfloat16" in proc.stdout
    predictions = json.loads((tmp_path / "test_predict.json").read_text())
    assert predictions == json.loads((e2e / "expected_predict.json").read_text())


def _loss_and_grads(data: str, *flags: str):
    """Loss, gradients and BatchNorm statistics after one forward/backward with dropout on (RNG replayed)."""
    trainer, batches = build_trainer(data, "--dropout", "0.1", "--encoder-drop-path-rate", "0.1", *flags)
    model, criterion = trainer.model, trainer.criterion
    model.train()
    sample = trainer._prepare_sample(next(batches))[0]
    torch.manual_seed(5)
    loss, _, _ = criterion(model, sample)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    running = {name: b.clone() for name, b in model.named_buffers() if "running" in name}
    return loss.detach(), grads, running


@pytest.mark.parametrize("flag", ["--checkpoint-activations", "--offload-activations"])
def test_activation_checkpointing_gives_the_same_losses_and_gradients(caption_data, flag):
    loss, grads, running = _loss_and_grads(caption_data)
    ckpt_loss, ckpt_grads, ckpt_running = _loss_and_grads(caption_data, flag)
    assert torch.equal(loss, ckpt_loss)
    assert grads.keys() == ckpt_grads.keys() and len(grads) > 50
    for name in grads:
        torch.testing.assert_close(ckpt_grads[name], grads[name], rtol=1e-5, atol=1e-7, msg=name)
    for name in running:  # BatchNorm statistics move once although the ResNet stages ran twice
        assert torch.equal(ckpt_running[name], running[name]), name


def _masked_full_vocab_scores(model, encoder_out, prompts, answers, trie, bos, eos, pad):
    """The original's all-candidate scores: full decoder pass and full-vocabulary logits per (prompt, answer),
    logits outside the trie masked before log_softmax, prompt positions not counted."""
    import math

    rows, targets, masks = [], [], []
    vocab = model.decoder.output_projection.weight.size(0)
    for prompt in prompts:
        for answer in answers:
            rows.append(torch.cat([prompt, answer]))
            targets.append(torch.cat([prompt[1:], answer, torch.tensor([eos])]))
            mask = torch.zeros(len(prompt) - 1 + len(answer) + 1, vocab, dtype=torch.bool)
            for i in range(len(answer) + 1):
                mask[len(prompt) - 1 + i, trie.get_next_layer([bos] + answer[:i].tolist())] = True
            masks.append(mask)
    pad_rows = lambda items, value: torch.nn.utils.rnn.pad_sequence(items, batch_first=True, padding_value=value)
    rows, targets, masks = pad_rows(rows, pad), pad_rows(targets, pad), pad_rows(masks, True)
    order = torch.arange(len(prompts)).repeat_interleave(len(answers))
    logits, extra = model.decoder(rows, encoder_out=model.encoder.reorder_encoder_out(encoder_out, order))
    lprobs = model.get_normalized_probs((logits.masked_fill(~masks, -math.inf), extra), log_probs=True)
    scores = lprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    scores = scores.masked_fill(targets.eq(pad) | (~masks).all(2), 0)
    return scores.sum(1).view(len(prompts), len(answers))


def test_trie_candidate_scorer_equals_the_full_vocabulary_scores():
    from models.candidate_scorer import plan_candidates, score_candidates_with_trie
    from models.ofa import build_ofa_model
    from utils.trie import Trie

    torch.manual_seed(0)
    model = build_ofa_model("ofa_tiny", encoder_layers=2, decoder_layers=2, resnet_type="resnet18",
                            patch_image_size=64).eval()
    bos, eos, pad = 0, 2, 1
    # answers of one to three tokens sharing prefixes, and prompts of different lengths
    answers = [torch.tensor(a) for a in ([50], [50, 60], [50, 60, 70], [50, 61], [80], [81, 90], [82], [83, 91, 92])]
    trie = Trie(eos)
    for answer in answers:
        trie.insert([bos] + answer.tolist() + [eos])
    prompts = [torch.tensor([bos, 100, 101, 102]), torch.tensor([bos, 200]), torch.tensor([bos, 300, 301])]
    encoder_out = model.encoder(torch.randint(4, 1000, (3, 6)), patch_images=torch.randn(3, 3, 64, 64),
                                patch_masks=torch.ones(3, dtype=torch.bool))
    with torch.no_grad():
        expected = _masked_full_vocab_scores(model, encoder_out, prompts, answers, trie, bos, eos, pad)
    scores = score_candidates_with_trie(model, encoder_out, prompts, answers, trie)
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(scores.argmax(1), expected.argmax(1))
    # an answer outside the trie cannot be produced: -inf, as with the masked logits
    outside = [answers[0], torch.tensor([50, 99])]
    plan = plan_candidates(outside, trie, bos, eos)
    assert score_candidates_with_trie(model, encoder_out, prompts, outside, trie, plan)[:, 1].eq(-math.inf).all()


# ---- on a GPU (skipped without CUDA) -------------------------------------------------------------------------
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
@pytest.mark.parametrize("flag", ["--amp", "--fp16"])
def test_half_precision_train_steps_on_gpu_are_finite_and_close_to_fp32(caption_data, flag):
    losses = []
    for flags in ((), (flag,)):
        trainer, batches = build_trainer(caption_data, *flags, gpu=True)
        losses.append([trainer.train_step([next(batches)])["loss"] for _ in range(2)])
    assert all(math.isfinite(loss) for loss in losses[1])
    assert losses[1] == pytest.approx(losses[0], rel=0.05)


@needs_cuda
def test_attention_on_gpu_matches_cpu():
    from models.ofa import build_ofa_model

    torch.manual_seed(0)
    model = build_ofa_model("ofa_tiny", encoder_layers=2, decoder_layers=2, resnet_type="resnet18",
                            patch_image_size=64).eval()
    inputs = dict(src_tokens=torch.randint(4, 1000, (2, 7)), src_lengths=torch.tensor([7, 7]),
                  prev_output_tokens=torch.randint(4, 1000, (2, 5)), patch_images=torch.randn(2, 3, 64, 64),
                  patch_masks=torch.ones(2, dtype=torch.bool))
    inputs["src_tokens"][1, -2:] = 1  # padding exercises the key padding mask
    with torch.no_grad():
        expected, _ = model(**inputs)
        logits, _ = model.cuda()(**{k: v.cuda() for k, v in inputs.items()})
    torch.testing.assert_close(logits.cpu(), expected, rtol=1e-3, atol=1e-3)


@needs_cuda
def test_nccl_data_parallel_on_one_gpu(caption_data, tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", f"--master_port={port}",
               str(REPO / "train.py"), caption_data, "--user-dir", str(REPO), "--task", "caption", *TINY_MODEL,
               "--selected-cols", "0,4,2", "--patch-image-size", "32", "--criterion",
               "adjust_label_smoothed_cross_entropy", "--optimizer", "adam", "--lr", "1e-4", "--batch-size", "4",
               "--max-update", "2", "--distributed-backend", "nccl", "--ddp-backend", "pytorch_ddp",
               "--num-workers", "0", "--save-dir", str(tmp_path), "--disable-validation", "--log-format", "json",
               "--log-interval", "1", "--amp"]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '"num_updates": "2"' in proc.stdout


def test_resnet_runs_channels_last_with_the_contiguous_results():
    from models.ofa.resnet import build_resnet

    torch.manual_seed(0)
    resnet = build_resnet("resnet18").eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = resnet(images)
        x = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(images))))  # the same layers, contiguous
        expected = resnet.layer3(resnet.layer2(resnet.layer1(x)))
    assert features.is_contiguous(memory_format=torch.channels_last) and expected.is_contiguous()
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)
