#!/usr/bin/env python3 -u
"""Caption, answer questions about, ground phrases in, entail or classify your own images.

    python predict.py --path caption.pt --task caption photos/
    python predict.py --path vqa.pt --task vqa_gen --question "what color is the car?" car.jpg
    python predict.py --path refcoco.pt --task refcoco --text "the dog on the left" dog.jpg --draw boxes/
    python predict.py --path ofa:vqa_large_best --requests questions.jsonl    # one question per image

One JSON line per image on stdout (or ``--output FILE.jsonl``): ``{"image": PATH, "caption"|"answer"|"box"|
"label": ...}``, boxes as ``[x0, y0, x1, y1]`` in pixels of the input image. Generation flags and their
defaults are those of the task's ``run_scripts/<task>/evaluate_*.sh``. The Python API is
:class:`inference.OFAPredictor`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def expand_images(items: list[str]) -> list[str]:
    """Image files in argument order; a folder gives its image files (by suffix), sorted."""
    paths = []
    for item in items:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, name) for name in os.listdir(item)
                           if name.lower().endswith(IMAGE_SUFFIXES))
            if not found:
                raise SystemExit(f"predict.py: error: {item}: no image files ({', '.join(IMAGE_SUFFIXES)})")
            paths.extend(found)
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise SystemExit(f"predict.py: error: {item}: no such file or folder")
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("images", nargs="*", help="image files and/or folders of images")
    parser.add_argument("--requests", metavar="FILE.jsonl",
                        help="one request per line (- for stdin): {\"image\": PATH, \"question\"|\"text\": ..., "
                             "\"premise\": ..., \"instruction\": ..., \"id\": ...}, image paths relative to the "
                             "file's folder; a bad line gets {\"line\": N, \"error\": ...} and the others are "
                             "answered (exit status 1)")
    parser.add_argument("--question", help="vqa_gen: the question asked about every image")
    parser.add_argument("--text", help="refcoco: the referring expression; snli_ve: the hypothesis")
    parser.add_argument("--premise", help="snli_ve: the text premise (models trained with --add-caption)")
    parser.add_argument("--instruction",
                        help="a free prompt in place of the task's, e.g. \"what is the man holding?\" (task caption; "
                             "--zero-shot for other checkpoints): the JSON line holds \"text\"")
    add_model_arguments(parser)
    parser.add_argument("--output", help="write the JSON lines to this file instead of stdout")
    parser.add_argument("--draw", metavar="OUT_DIR", help="save each image with its prediction drawn on it")
    parser.add_argument("--no-progress-bar", action="store_true")
    parser.add_argument("--verbose", action="store_true",
                        help="INFO logs and third-party warnings on the console (also OFA_SHOW_WARNINGS=1)")
    return parser


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The checkpoint, task and generation options (predict.py, serve.py)."""
    from utils.cli import QUANTIZE_CHOICES
    from utils.hub import names_help

    parser.add_argument("--path", required=True,
                        help="checkpoint file, a converted Hugging Face/ModelScope folder, or " + names_help())
    parser.add_argument("--task", help="the task (default: the checkpoint's), e.g. caption, vqa_gen, refcoco")
    parser.add_argument("--zero-shot", action="store_true",
                        help="run the checkpoint's weights as --task (pretrained or converted checkpoints)")
    parser.add_argument("--all-candidates", action="store_true",
                        help="vqa_gen: score every candidate answer instead of beam search over the answer set")
    parser.add_argument("--model-overrides", default="{}",
                        help="Python dict literal of task/model options, e.g. \"{'patch_image_size': 384}\"")
    gen = parser.add_argument_group("generation (defaults: the task's evaluate script, else fairseq's)")
    gen.add_argument("--beam", type=int)
    gen.add_argument("--max-len-a", type=float)
    gen.add_argument("--max-len-b", type=int)
    gen.add_argument("--min-len", type=int)
    gen.add_argument("--no-repeat-ngram-size", type=int)
    gen.add_argument("--lenpen", type=float)
    gen.add_argument("--temperature", type=float)
    gen.add_argument("--unnormalized", action="store_true", default=None, help="compare hypotheses by raw scores")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--cpu", action="store_true", help="run on CPU even when a GPU is present")
    parser.add_argument("--quantize", choices=QUANTIZE_CHOICES, default="none",
                        help="int8: the Transformer layers' Linear modules in int8 (runs on CPU; see README "
                             "\"Speed and memory\" for the quality change)")


def load_predictor(args: argparse.Namespace, prog: str):
    """The :class:`inference.OFAPredictor` the options of :func:`add_model_arguments` describe."""
    from inference.predictor import OFAPredictor
    from utils import hub
    from utils.cli import parse_dict_literal

    try:
        overrides = parse_dict_literal(args.model_overrides, "--model-overrides")
    except ValueError as err:
        raise SystemExit(f"{prog}: error: {err}") from None
    generation = {name: getattr(args, name) for name in (
        "beam", "max_len_a", "max_len_b", "min_len", "no_repeat_ngram_size", "lenpen", "temperature", "unnormalized")}
    return OFAPredictor.from_checkpoint(
        hub.resolve(args.path), task=args.task, model_overrides=overrides, zero_shot=args.zero_shot,
        device="cpu" if args.cpu else None, batch_size=args.batch_size, all_candidates=args.all_candidates,
        quantize=args.quantize, **generation)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from utils.logging_setup import configure_logging

    configure_logging(verbose=args.verbose)
    from PIL import Image
    from tqdm import tqdm

    from inference.draw import draw_prediction
    from inference.predictor import PredictionError, Request
    from inference.requests import answer_records
    from utils.checkpoint_utils import CheckpointError

    if bool(args.images) == bool(args.requests):
        raise SystemExit("predict.py: error: give image files/folders or --requests FILE.jsonl (one of them)")
    if args.requests and any(v is not None for v in (args.question, args.text, args.premise, args.instruction)):
        raise SystemExit("predict.py: error: with --requests, each line gives its own question/text/premise/"
                         "instruction")
    images = expand_images(args.images)
    text = args.question if args.question is not None else args.text
    if args.question is not None and args.text is not None:
        raise SystemExit("predict.py: error: give --question (vqa_gen) or --text (refcoco, snli_ve), not both")
    source = None
    if args.requests and args.requests != "-":
        try:
            source = open(args.requests, encoding="utf-8")
        except OSError as err:
            raise SystemExit(f"predict.py: error: --requests {args.requests}: {err.strerror}") from None
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    written = failed = 0
    try:
        predictor = load_predictor(args, "predict.py")
        if args.draw:
            os.makedirs(args.draw, exist_ok=True)
        bar = tqdm(total=len(images) or None, unit="image", disable=args.no_progress_bar, file=sys.stderr)
        if args.requests:
            base_dir = os.path.dirname(os.path.abspath(args.requests)) if source else None
            lines = answer_records(predictor, source or sys.stdin, args.requests, base_dir, progress=bar.update)
        else:
            requests = [Request(path, text, args.premise, args.instruction) for path in images]
            lines = ((request, {"image": request.image, **output})
                     for request, output in zip(requests, predictor.predict(requests, progress=bar.update)))
        for request, line in lines:
            out.write(json.dumps(line) + "\n")
            out.flush()
            written += 1
            if "error" in line:
                failed += 1
                print(f"predict.py: {line['error']}", file=sys.stderr)
            elif args.draw:
                with Image.open(request.image) as image:
                    drawn = draw_prediction(image, line, text=request.text if "box" in line else None)
                stem = os.path.splitext(os.path.basename(request.image))[0]
                drawn.save(os.path.join(args.draw, f"{stem}.png"))
        bar.close()
    except (PredictionError, CheckpointError, OSError, ValueError) as err:
        raise SystemExit("predict.py: error: " + " ".join(str(err).split())) from None
    finally:
        if out is not sys.stdout:
            out.close()
        if source:
            source.close()
    if args.output:
        print(f"wrote {written} predictions to {args.output}", file=sys.stderr)
    if failed:
        raise SystemExit(f"predict.py: {failed} of {written} requests failed (their lines hold \"error\")")


if __name__ == "__main__":
    main()
