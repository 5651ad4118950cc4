"""Convert OFA checkpoints between the Hugging Face / ModelScope layout and ours (the original fairseq layout).

    python scripts/convert_checkpoint.py to-fairseq HF_DIR OUT.pt
    python scripts/convert_checkpoint.py to-hf CKPT.pt OUT_DIR [--model-overrides "{'arch': 'ofa_base'}"]

``to-hf`` also writes what the ports need beside the weights: the BART-style tokenizer files (``vocab.json``,
``merges.txt``) and, for a checkpoint of a task ModelScope has a pipeline for, its ``configuration.json``
(task, patch image size, the generation settings of the task's evaluate script); ``to-fairseq`` reads the task
back from it. The conversion itself is library code: :mod:`models.ofa.hf_format` (weights, config.json) and
:mod:`tasks.hf_folder` (the folder, configuration.json).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

if __name__ == "__main__":  # run as a script: import our packages from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from models.ofa.hf_format import CheckpointLayoutError  # noqa: E402
from tasks.hf_folder import fairseq_file_to_hf_dir, hf_dir_to_fairseq_file  # noqa: E402
from utils.checkpoint_utils import CheckpointError  # noqa: E402
from utils.cli import parse_dict_literal  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    to_fairseq = commands.add_parser("to-fairseq", help="Hugging Face / ModelScope folder -> our checkpoint file")
    to_fairseq.add_argument("hf_dir", help="folder with config.json and pytorch_model.bin or model.safetensors")
    to_fairseq.add_argument("out", help="checkpoint file to write")
    to_hf = commands.add_parser("to-hf", help="our checkpoint file -> Hugging Face / ModelScope folder")
    to_hf.add_argument("checkpoint", help="checkpoint file (ours or the original's)")
    to_hf.add_argument("out_dir", help="folder to write pytorch_model.bin and config.json to")
    to_hf.add_argument("--model-overrides", default="{}",
                       help="Python dict literal of model options, e.g. \"{'arch': 'ofa_base'}\" for bare state dicts")
    to_hf.add_argument("--task-overrides", default="{}",
                       help="Python dict literal of task options, e.g. \"{'ans2label_file': 'ans2label.pkl'}\" "
                            "when the checkpoint's file is elsewhere on this machine")
    to_hf.add_argument("--allow-position-mismatch", action="store_true",
                       help="convert a checkpoint trained without --disable-entangle although the ports compute "
                            "other outputs for it")
    args = parser.parse_args(argv)
    source = args.hf_dir if args.command == "to-fairseq" else args.checkpoint
    try:
        if args.command == "to-fairseq":
            options = hf_dir_to_fairseq_file(args.hf_dir, args.out)
            print(f"wrote {args.out} (--arch {options['arch']})")
        else:
            hf_config = fairseq_file_to_hf_dir(
                args.checkpoint, args.out_dir, parse_dict_literal(args.model_overrides, "--model-overrides"),
                parse_dict_literal(args.task_overrides, "--task-overrides"), args.allow_position_mismatch)
            print(f"wrote {args.out_dir} (d_model {hf_config['d_model']}, {hf_config['encoder_layers']}+"
                  f"{hf_config['decoder_layers']} layers, "
                  f"{hf_config['vit_type'] if hf_config['use_ofasys'] else hf_config['resnet_type']})")
    except CheckpointLayoutError as err:
        print(f"error: {source}: {err}", file=sys.stderr)
        return 1
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
