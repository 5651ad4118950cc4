#!/usr/bin/env python3
"""Build OFA TSV files from images + annotations (COCO captions, VQA v2, RefCOCO, class folders, JSON lines).

    python dataset/build_tsv.py coco-caption --annotations captions_val2014.json --images val2014/ \
        --split valid --out data/caption_valid.tsv
    python dataset/build_tsv.py vqa --questions q.json --annotations a.json --images train2014/ \
        --split train --out data/vqa_train.tsv --ans2label-out data/ans2label.pkl
    python dataset/build_tsv.py refcoco --refs "refs(unc).p" --instances instances.json --images train2014/ \
        --split val --out data/refcoco_val.tsv
    python dataset/build_tsv.py class-folders --root imagenet/train --out data/train.tsv \
        --class2label-out data/class2label.pkl
    python dataset/build_tsv.py jsonl --task caption --input mine.jsonl --split train --out data/train.tsv

Prints the ``--selected-cols`` that read the file. ``--skip-bad`` skips unreadable images (listed at the end)
instead of stopping at the first.
"""
from __future__ import annotations

import argparse
import os
import sys

if __package__ in (None, ""):  # run as a script: the repository root is the import root
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dataset import builders  # noqa: E402
from utils.safe_pickle import load_pickle  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="source", required=True)

    def command(name: str, help: str, images: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help)
        sub.add_argument("--out", required=True, help="TSV file to write")
        sub.add_argument("--skip-bad", action="store_true", help="skip unreadable images instead of stopping")
        sub.add_argument("--no-progress-bar", action="store_true")
        if images:
            sub.add_argument("--images", required=True, help="folder the annotations' image file names are in")
        return sub

    sub = command("coco-caption", "COCO caption annotations JSON (one per split)")
    sub.add_argument("--annotations", required=True)
    sub.add_argument("--split", required=True, choices=("train", "valid", "test"),
                     help="train: one row per caption; valid/test: one row per image, references joined by &&")
    sub.add_argument("--references-out", help="also write the COCO-format references for coco_eval.py")

    sub = command("vqa", "VQA v2 questions + annotations JSON")
    sub.add_argument("--questions", required=True)
    sub.add_argument("--annotations", required=True)
    sub.add_argument("--split", required=True, choices=("train", "valid", "test"))
    sub.add_argument("--image-pattern", default="COCO_train2014_{image_id:012d}.jpg",
                     help="image file name from the image id (val: COCO_val2014_{image_id:012d}.jpg)")
    sub.add_argument("--ans2label", help="candidate answers (pickle {answer: label}) to keep (training)")
    sub.add_argument("--ans2label-out", help="write the candidate answers of these annotations (training)")
    sub.add_argument("--min-answer-count", type=int, default=9,
                     help="with --ans2label-out: keep answers that are the top answer at least this often")

    sub = command("refcoco", "RefCOCO/+/g refs + COCO instances")
    sub.add_argument("--refs", required=True, help="refs(unc).p / refs(umd).p / refs(google).p, or a JSON list")
    sub.add_argument("--instances", required=True, help="instances.json of the same dataset")
    sub.add_argument("--split", required=True, help="the refs' split: train, val, test, testA, testB")

    sub = command("class-folders", "ImageNet-style ROOT/<class>/<image> folders", images=False)
    sub.add_argument("--root", required=True)
    sub.add_argument("--class-names", help="lines 'folder class name' (e.g. synset words); default: folder names")
    sub.add_argument("--class2label-out", help="write {class name: label} for --ans2label-file")

    sub = command("jsonl", "JSON lines {\"image\": PATH, ...} (see dataset/README.md)", images=False)
    sub.add_argument("--input", required=True)
    sub.add_argument("--task", required=True, choices=builders.annotation_tasks())
    sub.add_argument("--split", default="train", choices=("train", "valid", "test"))
    sub.add_argument("--images", help="folder image paths are relative to (default: the JSONL file's folder)")
    sub.add_argument("--class2label-out", help="image_classify: write {label: index} for --ans2label-file")
    return parser


def build(args: argparse.Namespace) -> tuple[int, str]:
    """Write ``args.out``; returns (rows written, the task whose dataset reads it)."""
    encode = builders.ImageEncoder(skip_bad=args.skip_bad)
    progress = not args.no_progress_bar
    if args.source == "coco-caption":
        rows = builders.coco_caption_rows(args.annotations, args.images, args.split, encode)
        count = builders.write_tsv(rows, args.out, builders.coco_caption_count(args.annotations, args.split), progress)
        if args.references_out:
            builders.coco_reference_json(args.annotations, args.references_out)
        task = "caption"
    elif args.source == "vqa":
        answers = builders.vqa_answer_lists(args.annotations)
        ans2label = None
        if args.ans2label:
            ans2label = load_pickle(args.ans2label, "--ans2label")
        if args.ans2label_out:
            ans2label = builders.build_ans2label(answers.values(), args.min_answer_count)
            builders.write_pickle(ans2label, args.ans2label_out)
            print(f"wrote {len(ans2label)} candidate answers to {args.ans2label_out}")
        rows = builders.vqa_rows(args.questions, answers, args.images, args.image_pattern, encode,
                                 ans2label if args.split == "train" else None)
        count = builders.write_tsv(rows, args.out, None, progress)
        task = "vqa_gen"
    elif args.source == "refcoco":
        rows = builders.refcoco_rows(args.refs, args.instances, args.images, args.split, encode)
        count = builders.write_tsv(rows, args.out, None, progress)
        task = "refcoco"
    elif args.source == "class-folders":
        names = builders.class_folder_names(args.root, args.class_names)
        files = builders.class_folder_files(args.root, names)
        count = builders.write_tsv(builders.class_folder_rows(files, names, encode), args.out, len(files), progress)
        if args.class2label_out:
            builders.write_pickle(builders.class2label(names), args.class2label_out)
        task = "image_classify"
    else:
        labels: dict[str, int] = {}
        rows = builders.jsonl_rows(args.input, args.task, args.split, encode, args.images, labels)
        count = builders.write_tsv(rows, args.out, None, progress)
        if args.class2label_out:
            builders.write_pickle(labels, args.class2label_out)
        task = args.task
    if encode.skipped:
        print(f"skipped {len(encode.skipped)} unreadable image(s): {', '.join(encode.skipped[:5])}"
              f"{' ...' if len(encode.skipped) > 5 else ''}", file=sys.stderr)
    return count, task


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        count, task = build(args)
    except (builders.BuildError, OSError) as err:
        raise SystemExit(f"build_tsv.py: error: {err}") from None
    print(f"wrote {count} rows to {args.out} (task {task}: --selected-cols {builders.selected_cols(task)})")


if __name__ == "__main__":
    main()
