"""bfloat16 mixed precision (``--amp`` on CPU) against fp32: the loss after the same training on the tiny caption set.

Both runs start from the same weights and see the same batches (no shuffling) with the demo's caption settings
(``ofa_tiny`` with NormFormer scaling, lr 5e-4 with 10% warm-up and polynomial decay, batch 16, 96 px); after
``--updates`` updates it prints each run's training loss (mean of the last 10 updates) and validation loss, and
the relative difference of amp to fp32.

    python benchmarks/amp_loss.py [--updates 100 --batch-size 16 --image-size 96]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.train_step import caption_trainer  # noqa: E402

DEMO_FLAGS = ["--scale-attn", "--scale-fc", "--scale-heads", "--lr-scheduler", "polynomial_decay",
              "--warmup-ratio", "0.1", "--adam-eps", "1e-08"]


def train_and_validate(folder: str, args, *flags: str) -> tuple[float, float]:
    """(mean training loss of the last 10 updates, validation loss) after ``args.updates`` updates."""
    trainer = caption_trainer(folder, args.arch, args.image_size, args.batch_size, *DEMO_FLAGS,
                              "--max-update", str(args.updates), *flags, lr=args.lr)
    losses: list[float] = []
    epoch = 1
    while len(losses) < args.updates:
        for batch in trainer.get_train_iterator(epoch=epoch).next_epoch_itr(shuffle=False):
            losses.append(trainer.train_step([batch])["loss"])
            if len(losses) == args.updates:
                break
        epoch += 1
    trainer.task.load_dataset("valid")
    valid = trainer.get_valid_iterator("valid").next_epoch_itr(shuffle=False)
    total, weight = 0.0, 0
    for batch in valid:
        logging_output = trainer.valid_step(batch)
        total += logging_output["loss"] * logging_output["sample_size"]
        weight += logging_output["sample_size"]
    recent = losses[-10:]
    return sum(recent) / len(recent), total / weight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="ofa_tiny")
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--lr", type=float, default=5e-4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        fp32 = train_and_validate(folder, args)
        amp = train_and_validate(folder, args, "--amp")
    print(f"{args.arch}, tiny caption set, {args.updates} updates of batch {args.batch_size}, {args.image_size}px")
    for name, index in (("training loss (last 10 updates)", 0), ("validation loss", 1)):
        print(f"{name:32s} fp32 {fp32[index]:.4f}  amp (bf16) {amp[index]:.4f}  "
              f"relative difference {(amp[index] - fp32[index]) / fp32[index]:+.2%}")


if __name__ == "__main__":
    main()
