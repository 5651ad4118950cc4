"""The per-task shell scripts of ``run_scripts/`` (the original's script set on ``run_scripts/common.sh``).

Every script is checked twice over: a dry run (``OFA_DRY_RUN=1``) whose commands must carry the original's
hyper-parameters and parse with the real train.py/evaluate.py argument parsers, and a real run on the tiny
dataset with a tiny model (``ARCH=ofa_tiny`` plus ``EXTRA_ARGS``: 1+1 layers, width 32, 96 px, 2 updates, CPU,
one process). Data sits in the original's folder layout (``caption_data/caption_stage1_train.tsv``...) so the
scripts' default paths are what is tested. Real runs cover one training and one evaluation script per task (the
other scripts are the same code with other values); ``OFA_TEST_ALL_SCRIPTS=1`` runs every script for real.
Evaluation scripts load a checkpoint written by a training script of the same task in this session (trained
with ``--disable-validation``, so they are tested on their own).
"""
from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN_SCRIPTS = REPO / "run_scripts"
TASK_FOLDERS = ("caption", "vqa", "refcoco", "snli_ve", "image_classify", "gigaword", "glue", "ocr")
RUN_ALL = bool(os.environ.get("OFA_TEST_ALL_SCRIPTS"))
SCRIPT_TIMEOUT_S = 600

TINY_MODEL_ARGS = (
    "--encoder-layers=1 --decoder-layers=1 --encoder-embed-dim=32 --decoder-embed-dim=32 "
    "--encoder-ffn-embed-dim=64 --decoder-ffn-embed-dim=64 --encoder-attention-heads=2 "
    "--decoder-attention-heads=2 --resnet-type=resnet18 --image-bucket-size=6"  # 96 px: a 6x6 patch grid
)
TINY_RUN_ARGS = ("--max-update=2 --batch-size=2 --batch-size-valid=2 --update-freq=1 --log-interval=1 "
                 "--no-epoch-checkpoints --no-save-optimizer-state")
# the one real run under torchrun (one process, gloo); the others run with LAUNCHER=python, one import of torch less
TORCHRUN_SCRIPT = "caption/train_caption_stage1.sh"

# original layout path (under DATASET_ROOT) -> (tiny dataset path, rows kept; None: whole file)
TRAIN_ROWS, EVAL_ROWS = 8, 4
LAYOUT = {
    "caption_data/caption_stage1_train.tsv": ("caption/train.tsv", TRAIN_ROWS),
    "caption_data/caption_stage2_train.tsv": ("caption/valid.tsv", TRAIN_ROWS),  # several references per image
    "caption_data/caption_val.tsv": ("caption/valid.tsv", EVAL_ROWS),
    "caption_data/caption_test.tsv": ("caption/test.tsv", EVAL_ROWS),
    "caption_data/test_caption_coco_format.json": ("caption/test_caption_coco_format.json", None),
    "caption_data/cider_cached_tokens/coco-train-words.p": ("caption/cider_cached_tokens/tiny-train-words.p", None),
    "caption_data/cider_cached_tokens/coco-valid-words.p": ("caption/cider_cached_tokens/tiny-valid-words.p", None),
    "vqa_data/vqa_train.tsv": ("vqa/train.tsv", TRAIN_ROWS),
    "vqa_data/vqa_val.tsv": ("vqa/valid.tsv", EVAL_ROWS),
    "vqa_data/vqa_test.tsv": ("vqa/test.tsv", EVAL_ROWS),
    "vqa_data/trainval_ans2label.pkl": ("vqa/trainval_ans2label.pkl", None),
    "snli_ve_data/snli_ve_train.tsv": ("snli_ve/train.tsv", TRAIN_ROWS),
    "snli_ve_data/snli_ve_dev.tsv": ("snli_ve/valid.tsv", EVAL_ROWS),
    "snli_ve_data/snli_ve_test.tsv": ("snli_ve/test.tsv", EVAL_ROWS),
    "imagenet_1k_data/imagenet_1k_train.tsv": ("image_classify/train.tsv", TRAIN_ROWS),
    "imagenet_1k_data/imagenet_1k_val_subset.tsv": ("image_classify/valid.tsv", EVAL_ROWS),
    "imagenet_1k_data/imagenet_1k_val.tsv": ("image_classify/test.tsv", EVAL_ROWS),
    "imagenet_1k_data/class2label_new.pkl": ("image_classify/class2label_new.pkl", None),
    "gigaword_data/gigaword_train.tsv": ("gigaword/train.tsv", TRAIN_ROWS),
    "gigaword_data/gigaword_dev.tsv": ("gigaword/valid.tsv", EVAL_ROWS),
    "gigaword_data/gigaword_test.tsv": ("gigaword/test.tsv", EVAL_ROWS),
    "caption_data/ocr_scene_train.tsv": ("ocr/train.tsv", TRAIN_ROWS),
    "caption_data/ocr_scene_val.tsv": ("ocr/valid.tsv", EVAL_ROWS),
    "caption_data/ocr_scene_test.tsv": ("ocr/test.tsv", EVAL_ROWS),
    "muge_caption_data/caption_test.tsv": ("caption_cn/test.tsv", EVAL_ROWS),
}
REFCOCO_SPLITS = {"refcoco": ("val", "testA", "testB"), "refcocoplus": ("val", "testA", "testB"),
                  "refcocog": ("val", "test")}
for _name, _splits in REFCOCO_SPLITS.items():
    LAYOUT[f"{_name}_data/{_name}_train.tsv"] = ("refcoco/train.tsv", TRAIN_ROWS)
    for _split in _splits:
        LAYOUT[f"{_name}_data/{_name}_{_split}.tsv"] = ("refcoco/valid.tsv" if _split == "val" else "refcoco/test.tsv",
                                                       EVAL_ROWS)
GLUE_TASKS = ("cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2")
for _task in GLUE_TASKS:
    LAYOUT[f"glue_data/{_task}_train.tsv"] = (f"glue/{_task}/train.tsv", TRAIN_ROWS)
    LAYOUT[f"glue_data/{_task}_dev.tsv"] = (f"glue/{_task}/valid.tsv", EVAL_ROWS)
# checkpoints the scripts restore or evaluate by default (empty placeholders for dry runs)
DEFAULT_CHECKPOINTS = (
    "ofa_6b.pt", "ofa_huge.pt",
    "ofa_large.pt", "ofa_base.pt", "caption_stage1_best.pt", "caption_stage1_base_best.pt",
    "caption_large_best_clean.pt", "caption_base_best.pt", "caption_huge_best.pt", "vqa_large_best.pt",
    "vqa_base_best.pt", "vqa_unconstrained_best.pt",
    "snli_ve_large_best.pt", "snli_ve_base_best.pt", "imagenet_1k_large_best.pt", "gigaword_large_best.pt",
    *(f"{name}_{size}_best.pt" for name in REFCOCO_SPLITS for size in ("large", "base")),
    "ofa_cn_large.pt", "ofa_cn_ocr_large.pt", "ofa_cn_ocr_base.pt", "caption_cn_large.pt",
)

# positional arguments (the split for VQA and SNLI-VE evaluation, the task for train_glue.sh, the checkpoint of
# evaluate_vqa_unconstrained.sh; {ckpt} is CHECKPOINT_ROOT)
SCRIPT_ARGS = {"vqa/evaluate_vqa_beam.sh": ["val"], "vqa/evaluate_vqa_beam_base.sh": ["test"],
               "vqa/evaluate_vqa_allcand.sh": ["val"], "vqa/evaluate_vqa_base_allcand.sh": ["val"],
               "vqa/evaluate_vqa_allcand_distributed.sh": ["test"],
               "vqa/evaluate_vqa_base_allcand_distributed.sh": ["val"], "vqa/evaluate_vqa_zeroshot.sh": ["val"],
               "vqa/evaluate_vqa_unconstrained.sh": ["test", "{ckpt}/vqa_unconstrained_best.pt"],
               "snli_ve/evaluate_snli_ve.sh": ["dev"], "snli_ve/evaluate_snli_ve_base.sh": ["test"],
               "glue/train_glue.sh": ["sst2"]}

_LARGE_FT = {"--arch": "ofa_large", "--restore-file": "{ckpt}/ofa_large.pt"}
_BASE_FT = {"--arch": "ofa_base", "--restore-file": "{ckpt}/ofa_base.pt"}
_CAPTION1 = {"--task": "caption", "--criterion": "adjust_label_smoothed_cross_entropy", "--lr": "1e-5",
             "--max-epoch": "2", "--warmup-ratio": "0.06", "--batch-size": "8", "--update-freq": "4",
             "--label-smoothing": "0.1", "--drop-worst-ratio": "0.2", "--drop-worst-after": "2500",
             "--patch-image-size": "480", "--selected-cols": "0,4,2", "--encoder-drop-path-rate": "0.1",
             "--max-src-length": "80", "--max-tgt-length": "20", "--eval-cider": None,
             "--eval-args": '{"beam":5,"max_len_b":16,"no_repeat_ngram_size":3}',
             "--best-checkpoint-metric": "cider", **_LARGE_FT}
_CAPTION1_EL = {"--criterion": "adjust_label_smoothed_encouraging_loss", "--drop-worst-ratio": "0.05",
                "--log-end": "0.75"}
_CAPTION2 = {"--criterion": "scst_reward_criterion", "--lr": "1e-5", "--max-epoch": "3", "--batch-size": "2",
             "--update-freq": "4", "--end-learning-rate": "2e-7", "--selected-cols": "1,4,2", "--dropout": "0.0",
             "--encoder-drop-path-rate": "0.0", "--scst": None,
             "--scst-args": '{"beam":5,"max_len_b":16,"no_repeat_ngram_size":3}',
             "--arch": "ofa_large", "--restore-file": "{ckpt}/caption_stage1_best.pt"}
_VQA = {"--task": "vqa_gen", "--lr": "5e-5", "--total-num-update": "40000", "--warmup-updates": "1000",
        "--max-update": "40000", "--batch-size": "4", "--update-freq": "4", "--patch-image-size": "480",
        "--encoder-drop-path-rate": "0.2", "--max-object-length": "30", "--max-tgt-length": "30",
        "--prompt-type": "prev_output", "--val-inference-type": "allcand", "--uses-ema": None, "--store-ema": None,
        "--ema-fp32": None, "--ema-decay": "0.9999", "--add-object": None, "--valid-batch-size": "20",
        "--ans2label-file": "{data}/vqa_data/trainval_ans2label.pkl", **_LARGE_FT}
_REFCOCO = {"--task": "refcoco", "--lr": "3e-5", "--max-epoch": "10", "--batch-size": "4", "--update-freq": "8",
            "--warmup-ratio": "0.06", "--patch-image-size": "512", "--encoder-drop-path-rate": "0.2",
            "--eval-acc": None, "--eval-args": '{"beam":5,"min_len":4,"max_len_a":0,"max_len_b":4}',
            "--best-checkpoint-metric": "score", "--selected-cols": "0,4,2,3", **_LARGE_FT}
_REFCOCO_BASE = {**_BASE_FT, "--lr": "5e-5", "--encoder-drop-path-rate": "0.1"}
_REFCOCO_EL = {"--criterion": "adjust_label_smoothed_encouraging_loss", "--log-end": "0.75"}
_PEFT = {"--batch-size": "16", "--max-epoch": "100", "--patch-image-size": "480", "--lr": "0.03"}
_SNLI = {"--task": "snli_ve", "--lr": "2e-5", "--max-epoch": "6", "--label-smoothing": "0.0", "--batch-size": "4",
         "--update-freq": "8", "--patch-image-size": "480", "--prompt-type": "prev_output", "--add-caption": None,
         "--best-checkpoint-metric": "snli_score", "--selected-cols": "0,2,3,4,5", **_LARGE_FT}
_GLUE = {"--max-epoch": "5", "--lr": "1e-4", "--label-smoothing": "0.0", "--max-src-length": "512",
         "--prompt-type": "src", "--warmup-ratio": "0.06", **_LARGE_FT}
BERT_CN_DIR = str(REPO / "utils" / "BERT_CN_dict")
_OCR_EVAL = {"--task": "ocr", "--beam": "5", "--max-len-b": "64", "--no-repeat-ngram-size": "0", "--batch-size": "8",
             "--gen-subset": "test", "--path": "{ckpt}/ofa_cn_ocr_large.pt", "data": "caption_data/ocr_scene_test.tsv",
             "overrides": {"bpe_dir": BERT_CN_DIR, "selected_cols": "0,1,2", "resnet_model_path": None}}
# script -> (number of commands, flags of the first command with the original's default values; None: a switch)
EXPECTED = {
    "caption/train_caption_stage1.sh": (1, _CAPTION1),
    "caption/train_caption_stage1_base.sh": (1, {**_CAPTION1, **_BASE_FT, "--max-epoch": "5",
                                                 "--drop-worst-after": "6000"}),
    "caption/train_caption_stage1_el.sh": (1, {**_CAPTION1, **_CAPTION1_EL, "--drop-best-ratio": "absent"}),
    "caption/train_caption_stage1_el_db.sh": (1, {**_CAPTION1, **_CAPTION1_EL, "--drop-best-ratio": "0.05",
                                                  "--drop-best-after": "2500"}),
    "caption/train_caption_stage1_huge_fsdp.sh": (1, {**_CAPTION1, "--arch": "ofa_huge",
                                                      "--ddp-backend": "fully_sharded",
                                                      "--restore-file": "{ckpt}/ofa_huge.pt"}),
    "caption/train_caption_stage1_6b_fsdp.sh": (1, {**_CAPTION1, "--arch": "ofa_6b", "--ddp-backend": "fully_sharded",
                                                    "--restore-file": "{ckpt}/ofa_6b.pt", "--batch-size": "4",
                                                    "--update-freq": "8"}),
    "caption/train_caption_stage2.sh": (1, _CAPTION2),
    "caption/train_caption_stage2_base.sh": (1, {**_CAPTION2, "--arch": "ofa_base", "--end-learning-rate": "absent",
                                                 "--restore-file": "{ckpt}/caption_stage1_base_best.pt"}),
    "caption/evaluate_caption.sh": (1, {"--task": "caption", "--beam": "5", "--max-len-b": "16",
                                        "--no-repeat-ngram-size": "3", "--batch-size": "16", "--gen-subset": "test",
                                        "--path": "{ckpt}/caption_large_best_clean.pt", "--temperature": "absent",
                                        "--lenpen": "absent",
                                        "overrides": {"eval_cider": False, "selected_cols": "1,4,2"}}),
    "caption/evaluate_caption_base.sh": (1, {"--path": "{ckpt}/caption_base_best.pt"}),
    "caption/evaluate_caption_huge.sh": (1, {"--path": "{ckpt}/caption_huge_best.pt", "--beam": "10",
                                             "--temperature": "0.98", "--lenpen": "0.98", "--max-len-b": "16",
                                             "--no-repeat-ngram-size": "3", "--batch-size": "16"}),
    "vqa/train_vqa_distributed.sh": (1, _VQA),
    "vqa/train_vqa_base_distributed.sh": (1, {**_BASE_FT, "--max-epoch": "15", "--warmup-ratio": "0.04",
                                              "--encoder-drop-path-rate": "0.1", "--total-num-update": "absent"}),
    "vqa/evaluate_vqa_beam.sh": (1, {"--task": "vqa_gen", "--beam-search-vqa-eval": None, "--beam": "5",
                                     "--unnormalized": None, "--temperature": "1.0", "--ema-eval": None,
                                     "--batch-size": "16", "--gen-subset": "val",
                                     "overrides": {"selected_cols": "0,5,2,3,4"}}),
    "vqa/evaluate_vqa_beam_base.sh": (1, {"--path": "{ckpt}/vqa_base_best.pt", "--gen-subset": "test",
                                          "overrides": {"valid_batch_size": 20}}),
    "vqa/evaluate_vqa_allcand.sh": (1, {"--ema-eval": None, "--batch-size": "8", "--beam-search-vqa-eval": "absent",
                                        "--path": "{ckpt}/vqa_large_best.pt"}),
    "vqa/evaluate_vqa_base_allcand.sh": (1, {"--path": "{ckpt}/vqa_base_best.pt"}),
    "vqa/evaluate_vqa_allcand_distributed.sh": (1, {"--batch-size": "4", "--valid-batch-size": "20",
                                                    "--gen-subset": "test", "--ema-eval": None}),
    "vqa/evaluate_vqa_base_allcand_distributed.sh": (1, {"--path": "{ckpt}/vqa_base_best.pt", "--batch-size": "4",
                                                         "--valid-batch-size": "20", "--ema-eval": None}),
    "vqa/evaluate_vqa_zeroshot.sh": (1, {"--task": "vqa_gen", "--zero-shot": None, "--path": "{ckpt}/ofa_large.pt",
                                        "--beam": "20", "--unnormalized": None, "--temperature": "1.0",
                                        "--prompt-type": "none", "--patch-image-size": "480", "--batch-size": "8",
                                        "--selected-cols": "0,5,2,3,4", "--gen-subset": "val",
                                        "--beam-search-vqa-eval": "absent", "--ema-eval": "absent",
                                        "--model-overrides": "absent"}),
    "vqa/evaluate_vqa_unconstrained.sh": (1, {"--task": "vqa_gen", "--path": "{ckpt}/vqa_unconstrained_best.pt",
                                             "--ema-eval": None, "--beam-search-vqa-eval": None, "--beam": "5",
                                             "--unnormalized": None, "--temperature": "1.0", "--batch-size": "16",
                                             "--gen-subset": "test",
                                             "overrides": {"selected_cols": "0,5,2,3,4", "ans2label_file": None}}),
    "refcoco/train_refcoco.sh": (1, _REFCOCO),
    "refcoco/train_refcocoplus.sh": (1, {**_REFCOCO, "data": "refcocoplus_data/refcocoplus_train.tsv"}),
    "refcoco/train_refcocog.sh": (1, {**_REFCOCO, "data": "refcocog_data/refcocog_train.tsv"}),
    "refcoco/train_refcoco_base.sh": (1, {**_REFCOCO, **_REFCOCO_BASE}),
    "refcoco/train_refcocoplus_base.sh": (1, {**_REFCOCO_BASE, "data": "refcocoplus_data/refcocoplus_train.tsv"}),
    "refcoco/train_refcocog_base.sh": (1, {**_REFCOCO_BASE, "--max-epoch": "12"}),
    "refcoco/train_refcoco_el.sh": (1, {**_REFCOCO, **_REFCOCO_EL}),
    "refcoco/train_refcocoplus_el.sh": (1, {**_REFCOCO_EL, "data": "refcocoplus_data/refcocoplus_train.tsv"}),
    "refcoco/train_refcocog_el.sh": (1, {**_REFCOCO_EL, "data": "refcocog_data/refcocog_train.tsv"}),
    "refcoco/train_refcoco_prefix.sh": (3, {**_PEFT, "--encoder-prompt": None, "--decoder-prompt": None,
                                            "--encoder-prompt-type": "prefix", "--encoder-prompt-length": "100",
                                            "--decoder-prompt-length": "100"}),
    "refcoco/train_refcoco_adapter.sh": (3, {**_PEFT, "--adapter": None, "--adapter-dim": "100"}),
    "refcoco/train_refcoco_bitfit.sh": (3, {**_PEFT, "--bitfit": None}),
    "refcoco/evaluate_refcoco.sh": (8, {"--task": "refcoco", "--beam": "5", "--min-len": "4", "--max-len-a": "0",
                                        "--max-len-b": "4", "--no-repeat-ngram-size": "3", "--batch-size": "16",
                                        "--gen-subset": "refcoco_val", "--path": "{ckpt}/refcoco_large_best.pt"}),
    "refcoco/evaluate_refcoco_base.sh": (8, {"--path": "{ckpt}/refcoco_base_best.pt"}),
    "refcoco/evaluate_refcoco_zeroshot.sh": (1, {"--task": "refcoco", "--zero-shot": None, "--path": "{ckpt}/ofa_large.pt",
                                                "--patch-image-size": "480", "--beam": "5", "--min-len": "4",
                                                "--max-len-a": "0", "--max-len-b": "4", "--no-repeat-ngram-size": "3",
                                                "--batch-size": "16", "--gen-subset": "refcoco_val",
                                                "--selected-cols": "0,4,2,3", "data": "refcoco_data/refcoco_val.tsv"}),
    "snli_ve/train_snli_ve.sh": (1, _SNLI),
    "snli_ve/train_snli_ve_base.sh": (1, {**_SNLI, **_BASE_FT, "--lr": "5e-5", "--max-epoch": "5",
                                          "--encoder-drop-path-rate": "0.1"}),
    "snli_ve/evaluate_snli_ve.sh": (1, {"--task": "snli_ve", "--batch-size": "8", "--gen-subset": "dev",
                                        "--path": "{ckpt}/snli_ve_large_best.pt"}),
    "snli_ve/evaluate_snli_ve_base.sh": (1, {"--gen-subset": "test", "--path": "{ckpt}/snli_ve_base_best.pt"}),
    "snli_ve/evaluate_snli_ve_zeroshot.sh": (1, {"--task": "snli_ve", "--zero-shot": None, "--path": "{ckpt}/ofa_base.pt",
                                                "--patch-image-size": "384", "--max-src-length": "80",
                                                "--batch-size": "16", "--prompt-type": "prev_output",
                                                "--gen-subset": "snli_ve_zeroshot", "--selected-cols": "0,2,3,4,5",
                                                "data": "snli_ve_data/snli_ve_dev.tsv"}),
    "image_classify/train_imagenet_distributed.sh": (1, {
        "--task": "image_classify", "--total-num-update": "160000", "--warmup-updates": "1000", "--lr": "5e-5",
        "--max-update": "160000", "--batch-size": "4", "--update-freq": "4", "--max-src-length": "128",
        "--patch-image-size": "480", "--imagenet-default-mean-and-std": None, "--selected-cols": "0,2", **_LARGE_FT}),
    "image_classify/evaluate_imagenet.sh": (1, {"--task": "image_classify", "--gen-subset": "val",
                                                "--batch-size": "8"}),
    "gigaword/train_gigaword.sh": (1, {
        "--task": "gigaword", "--lr": "1e-4", "--max-epoch": "6", "--batch-size": "64", "--update-freq": "2",
        "--noise-ratio": "0.2", "--max-src-length": "512", "--max-tgt-length": "64", "--eval-rouge": None,
        "--best-checkpoint-metric": "rougeL_f1", "--patch-image-size": "absent",
        "--eval-args": '{"beam":6,"lenpen":0.7,"max_len_b":32,"no_repeat_ngram_size":3}', **_LARGE_FT}),
    "gigaword/evaluate_gigaword.sh": (1, {"--task": "gigaword", "--beam": "6", "--lenpen": "0.7", "--max-len-b": "32",
                                          "--no-repeat-ngram-size": "3", "--batch-size": "32"}),
    "glue/train_glue.sh": (30, {**_GLUE, "--task": "sst2", "--batch-size": "16", "--update-freq": "2"}),
    "glue/train_cola.sh": (45, {**_GLUE, "--task": "cola", "--selected-cols": "1,2", "--batch-size": "16",
                                "--update-freq": "4", "--best-checkpoint-metric": "mcc",
                                "--validate-interval-updates": "10"}),
    "glue/train_mnli.sh": (30, {**_GLUE, "--task": "mnli", "--selected-cols": "0,1,2", "--batch-size": "8",
                                "--validate-interval-updates": "1000"}),
    "glue/train_mrpc.sh": (45, {**_GLUE, "--task": "mrpc", "--selected-cols": "0,1,2", "--batch-size": "16"}),
    "glue/train_qnli.sh": (30, {**_GLUE, "--task": "qnli", "--selected-cols": "1,2,3", "--batch-size": "8",
                                "--validate-interval-updates": "500"}),
    "glue/train_qqp.sh": (30, {**_GLUE, "--task": "qqp", "--selected-cols": "3,4,5", "--batch-size": "8"}),
    "glue/train_rte.sh": (45, {**_GLUE, "--task": "rte", "--selected-cols": "1,2,3", "--update-freq": "8"}),
    "ocr/evaluate_ocr.sh": (1, _OCR_EVAL),
    "ocr/evaluate_ocr_base.sh": (1, {**_OCR_EVAL, "--path": "{ckpt}/ofa_cn_ocr_base.pt", "--batch-size": "16"}),
    # the original ships no OCR training script: the values of ours
    "ocr/train_ocr.sh": (1, {"--task": "ocr", "--bpe": "bert", "--bpe-dir": BERT_CN_DIR, "--lr": "5e-5",
                             "--max-epoch": "5", "--warmup-ratio": "0.06", "--batch-size": "8", "--update-freq": "4",
                             "--patch-image-size": "480", "--selected-cols": "0,1,2", "--best-checkpoint-metric": "acc",
                             "--eval-args": '{"beam":5,"max_len_b":64,"no_repeat_ngram_size":0}',
                             "--is-document": "absent", "--arch": "ofa_large",
                             "--restore-file": "{ckpt}/ofa_cn_large.pt"}),
    "caption/generate_caption_cn.sh": (1, {"--task": "caption", "--beam": "8", "--max-len-b": "128",
                                           "--no-repeat-ngram-size": "3", "--batch-size": "16",
                                           "--path": "{ckpt}/caption_cn_large.pt",
                                           "data": "muge_caption_data/caption_test.tsv",
                                           "overrides": {"bpe_dir": BERT_CN_DIR, "eval_cider": False,
                                                         "selected_cols": "1,4,2"}}),
    "glue/train_sst2.sh": (30, {**_GLUE, "--task": "sst2", "--selected-cols": "0,1", "--best-checkpoint-metric": "acc",
                                "--validate-interval-updates": "50"}),
}

# Real runs: one training and one evaluation script per task (RUN_ALL: every script). Evaluation scripts
# map to the training script whose checkpoint they load, the checkpoint names under CHECKPOINT_ROOT and
# the result files they write under RESULTS_ROOT.
REAL_TRAIN = ("caption/train_caption_stage1.sh", "caption/train_caption_stage2.sh", "vqa/train_vqa_distributed.sh",
              "refcoco/train_refcoco.sh", "snli_ve/train_snli_ve.sh", "image_classify/train_imagenet_distributed.sh",
              "gigaword/train_gigaword.sh", "glue/train_mnli.sh", "ocr/train_ocr.sh")
EVALUATIONS = {
    "caption/evaluate_caption.sh": ("caption/train_caption_stage1.sh", ["caption_large_best_clean.pt"],
                                    ["caption/test_predict.json"]),
    "caption/evaluate_caption_base.sh": ("caption/train_caption_stage1.sh", ["caption_base_best.pt"],
                                         ["caption/test_predict.json"]),
    "caption/evaluate_caption_huge.sh": ("caption/train_caption_stage1.sh", ["caption_huge_best.pt"],
                                         ["caption/test_predict.json"]),
    "vqa/evaluate_vqa_beam.sh": ("vqa/train_vqa_distributed.sh", ["vqa_large_best.pt"],
                                 ["vqa_val_beam/val_predict.json"]),
    "vqa/evaluate_vqa_beam_base.sh": ("vqa/train_vqa_distributed.sh", ["vqa_base_best.pt"],
                                      ["vqa_test_beam/test_predict.json"]),
    "vqa/evaluate_vqa_allcand.sh": ("vqa/train_vqa_distributed.sh", ["vqa_large_best.pt"],
                                    ["vqa_val_allcand/val_predict.json"]),
    "vqa/evaluate_vqa_base_allcand.sh": ("vqa/train_vqa_distributed.sh", ["vqa_base_best.pt"],
                                         ["vqa_val_allcand/val_predict.json"]),
    "vqa/evaluate_vqa_allcand_distributed.sh": ("vqa/train_vqa_distributed.sh", ["vqa_large_best.pt"],
                                                ["vqa_test_allcand/test_predict.json"]),
    "vqa/evaluate_vqa_base_allcand_distributed.sh": ("vqa/train_vqa_distributed.sh", ["vqa_base_best.pt"],
                                                     ["vqa_val_allcand/val_predict.json"]),
    "vqa/evaluate_vqa_zeroshot.sh": ("vqa/train_vqa_distributed.sh", ["ofa_large.pt"],
                                     ["vqa_val_zeroshot/val_predict.json"]),
    # (a constrained checkpoint: beam search then still follows its answer trie)
    "vqa/evaluate_vqa_unconstrained.sh": ("vqa/train_vqa_distributed.sh", ["vqa_unconstrained_best.pt"],
                                          ["vqa_test_unconstrained/test_predict.json"]),
    "refcoco/evaluate_refcoco.sh": ("refcoco/train_refcoco.sh", ["refcoco_large_best.pt", "refcocog_large_best.pt"],
                                    ["refcoco/refcoco_val_predict.json", "refcocog/refcocog_test_predict.json"]),
    "refcoco/evaluate_refcoco_base.sh": ("refcoco/train_refcoco.sh", ["refcocoplus_base_best.pt"],
                                         ["refcocoplus/refcocoplus_testB_predict.json"]),
    "refcoco/evaluate_refcoco_zeroshot.sh": ("refcoco/train_refcoco.sh", ["ofa_large.pt"],
                                             ["refcoco/refcoco_val_predict.json"]),
    "snli_ve/evaluate_snli_ve.sh": ("snli_ve/train_snli_ve.sh", ["snli_ve_large_best.pt"], ["snli_ve/dev_predict.json"]),
    "snli_ve/evaluate_snli_ve_base.sh": ("snli_ve/train_snli_ve.sh", ["snli_ve_base_best.pt"],
                                         ["snli_ve/test_predict.json"]),
    "snli_ve/evaluate_snli_ve_zeroshot.sh": ("snli_ve/train_snli_ve.sh", ["ofa_base.pt"],
                                             ["snli_ve/snli_ve_zeroshot_predict.json"]),
    "image_classify/evaluate_imagenet.sh": ("image_classify/train_imagenet_distributed.sh",
                                            ["imagenet_1k_large_best.pt"], ["imagenet_1k_val/val_predict.json"]),
    "gigaword/evaluate_gigaword.sh": ("gigaword/train_gigaword.sh", ["gigaword_large_best.pt"],
                                      ["gigaword/test_predict.json"]),
    "ocr/evaluate_ocr.sh": ("ocr/train_ocr.sh", ["ofa_cn_ocr_large.pt"], ["ocr/test_predict.json"]),
    "ocr/evaluate_ocr_base.sh": ("ocr/train_ocr.sh", ["ofa_cn_ocr_base.pt"], ["ocr/test_predict.json"]),
}
# scripts whose real run needs what the tiny workspace has no training script for (tested where named)
REAL_RUN_ELSEWHERE = {"caption/generate_caption_cn.sh": "tests/tasks/test_ocr_task.py (a Chinese caption checkpoint)"}
REAL_EVALUATE = ("caption/evaluate_caption.sh", "vqa/evaluate_vqa_beam.sh", "vqa/evaluate_vqa_allcand.sh",
                 "refcoco/evaluate_refcoco.sh", "snli_ve/evaluate_snli_ve.sh", "image_classify/evaluate_imagenet.sh",
                 "gigaword/evaluate_gigaword.sh", "ocr/evaluate_ocr.sh")
# which dataset:split pairs evaluate_refcoco*.sh run for real (the dry run checks all eight)
REFCOCO_EVAL_SETS = {"refcoco/evaluate_refcoco.sh": "refcoco:val refcocog:test",
                     "refcoco/evaluate_refcoco_base.sh": "refcocoplus:testB"}


def all_scripts() -> list[str]:
    """The finetuning/evaluation scripts (run_scripts/<task>/*.sh); pretraining/, image_gen/ and the top-level
    scripts (setup_env.sh, test.sh, demo.sh) are tested by their owners."""
    return sorted(path.relative_to(RUN_SCRIPTS).as_posix()
                  for task in TASK_FOLDERS for path in (RUN_SCRIPTS / task).glob("*.sh"))


SCRIPTS = all_scripts()
TRAIN_SCRIPTS = [s for s in SCRIPTS if s not in EVALUATIONS and s not in REAL_RUN_ELSEWHERE]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_workspace(root: Path) -> Path:
    """Tiny dataset in the original's folder layout under ``root/dataset``; ``root/checkpoints`` for checkpoints."""
    from dataset.make_tiny_dataset import make_tiny_dataset

    tiny = root / "tiny"
    make_tiny_dataset(tiny, seed=0, image_size=96)
    for target, (source, rows) in LAYOUT.items():
        dest = root / "dataset" / target
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rows is None:
            shutil.copyfile(tiny / source, dest)
        else:
            with open(tiny / source, encoding="utf-8") as src:
                dest.write_text("".join(line for _, line in zip(range(rows), src)), encoding="utf-8")
    (root / "checkpoints").mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Path:
    """The session's workspace (its trained checkpoints serve the evaluation scripts); deleted at the end."""
    root = build_workspace(tmp_path_factory.mktemp("run_scripts"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def run_name(script: str) -> str:
    return script.replace("/", "__").removesuffix(".sh")


def base_env(workspace: Path, script: str) -> dict[str, str]:
    """A clean environment (a user's LR, ARCH, EXTRA_ARGS... must not leak into the checks) with every path
    pointing into the workspace."""
    keep = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "OFA_VENV")
    env = {name: value for name, value in os.environ.items() if name in keep}
    env.update(NUM_GPUS="0", NPROC_PER_NODE="1", NNODES="1", NODE_RANK="0", MASTER_PORT=str(free_port()),
               DATASET_ROOT=str(workspace / "dataset"), CHECKPOINT_ROOT=str(workspace / "checkpoints"),
               RESULTS_ROOT=str(workspace / "results"), LOG_DIR=str(workspace / "logs" / run_name(script)),
               SAVE_DIR=str(workspace / "saved" / run_name(script)))
    return env


def tiny_env(workspace: Path, script: str) -> dict[str, str]:
    """Environment for a real run: tiny model, every hyper-parameter grid pinned to one point, 2 updates."""
    env = base_env(workspace, script)
    if Path(script).name.startswith("evaluate"):  # the model comes from the checkpoint
        env.update(BATCH_SIZE="2", EXTRA_ARGS="")
    else:
        env.update(ARCH="ofa_tiny", RESTORE_FILE="", PATCH_IMAGE_SIZE="96", MAX_EPOCH="1", LR="1e-4", UPDATE_FREQ="1",
                   TOTAL_NUM_UPDATES="2", WARMUP_UPDATES="1", EXTRA_ARGS=f"{TINY_MODEL_ARGS} {TINY_RUN_ARGS}")
    if script != TORCHRUN_SCRIPT:
        env["LAUNCHER"] = "python"
    if script.startswith("caption/train_"):  # evaluate.py's COCO scores (java METEOR, ~10 s): test_evaluate.py's
        env["EXTRA_ARGS"] += " --skip-coco-scores"
    if script in REFCOCO_EVAL_SETS:
        env["EVAL_SETS"] = REFCOCO_EVAL_SETS[script]
    if script.endswith("_prefix.sh"):
        env.update(ENCODER_PROMPT_LENGTH="4", DECODER_PROMPT_LENGTH="4", PROMPT_PROJECTION="1")
    if script.endswith("_adapter.sh"):
        env["ADAPTER_DIM"] = "8"
    return env


def run_script(script: str, env: dict[str, str], cwd: Path, timeout: float = SCRIPT_TIMEOUT_S):
    args = [arg.replace("{ckpt}", env["CHECKPOINT_ROOT"]) for arg in SCRIPT_ARGS.get(script, [])]
    return subprocess.run(["bash", str(RUN_SCRIPTS / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def tail(text: str, lines: int = 25) -> str:
    """The error lines first (torchrun's own traceback buries them), then the end of the output."""
    all_lines = text.splitlines()
    errors = [line for line in all_lines if "error" in line.lower() and "torch/distributed" not in line][:10]
    return "\n".join(errors + ["..."] + all_lines[-lines:])


# ---------------------------------------------------------------- dry runs: the original's values, real parsers

def dry_run_commands(workspace: Path, script: str) -> list[list[str]]:
    for name in DEFAULT_CHECKPOINTS:
        (workspace / "checkpoints" / name).touch(exist_ok=True)
    env = base_env(workspace, script)
    env["OFA_DRY_RUN"] = "1"
    result = run_script(script, env, cwd=REPO, timeout=120)
    assert result.returncode == 0, f"{script} (dry run) exited with {result.returncode}:\n{tail(result.stdout + result.stderr)}"
    return [shlex.split(line) for line in result.stdout.splitlines() if line.startswith("torchrun ")]


def entry_argv(command: list[str]) -> list[str]:
    """``train.py``/``evaluate.py`` (as an absolute path into the repository) and its arguments."""
    index = next(i for i, arg in enumerate(command) if arg.endswith(".py"))
    assert Path(command[index]).parent == REPO, command[index]
    return command[index:]


def flag_value(argv: list[str], flag: str):
    """The last value given to ``flag`` (``--flag=v`` or ``--flag v``); True for a bare switch; None if absent."""
    value = None
    for i, arg in enumerate(argv):
        if arg == flag:
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            value = True if nxt.startswith("--") or not nxt else nxt
        elif arg.startswith(flag + "="):
            value = arg[len(flag) + 1:]
    return value


def parse_with_entry_point(argv: list[str]) -> str:
    """Parse a command's arguments with train.py's or evaluate.py's own parser; returns argparse's error text."""
    from fairseq import options
    from fairseq.dataclass.utils import gen_parser_from_dataclass

    entry, args = Path(argv[0]).name, argv[1:]
    if entry == "train.py":
        from training.ema import EMAInitConfig  # train.py's extra checkpoint options

        parser = options.get_training_parser()
        gen_parser_from_dataclass(parser.add_argument_group("checkpoint (OFA)"), EMAInitConfig())
    else:
        parser = options.get_generation_parser()
        for switch in ("--ema-eval", "--beam-search-vqa-eval", "--zero-shot"):  # evaluate.py's own switches
            parser.add_argument(switch, action="store_true")
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            options.parse_args_and_arch(parser, input_args=args)
    except SystemExit:
        return stderr.getvalue().strip().splitlines()[-1]
    return ""


@pytest.mark.parametrize("script", SCRIPTS)
def test_dry_run_has_the_original_values(workspace, script):
    commands = dry_run_commands(workspace, script)
    count, expected = EXPECTED[script]
    assert len(commands) == count, f"{script}: {len(commands)} commands, the original runs {count}"
    argv = entry_argv(commands[0])
    for flag, want in expected.items():
        if flag == "overrides":
            overrides = ast.literal_eval(flag_value(argv, "--model-overrides"))
            assert {k: overrides.get(k) for k in want} == want, f"{script}: --model-overrides {overrides}"
        elif flag == "data":
            assert argv[1].startswith(str(workspace / "dataset" / want)), f"{script}: data {argv[1]}"
        else:
            got = flag_value(argv, flag)
            want = (True if want is None else None if want == "absent" else
                    want.replace("{ckpt}", str(workspace / "checkpoints")).replace("{data}", str(workspace / "dataset")))
            assert got == want, f"{script}: {flag} is {got!r}, the original uses {want!r}"
    assert flag_value(argv, "--cpu") is True and flag_value(argv, "--fp16") is None, "no GPU: --cpu, no fp16"
    assert flag_value(argv, "--distributed-backend") == "gloo"


@pytest.mark.parametrize("script", SCRIPTS)
def test_dry_run_parses_with_the_entry_point(workspace, script):
    commands = dry_run_commands(workspace, script)
    argv = entry_argv(commands[0])
    error = parse_with_entry_point(argv)
    assert not error, f"{script}: {Path(argv[0]).name} rejects its command line: {error}"


def test_grids_can_be_pinned_and_swept(workspace):
    env = base_env(workspace, "glue/train_rte.sh")
    env.update(OFA_DRY_RUN="1", MAX_EPOCH="3", LR="1e-5 2e-5", UPDATE_FREQ="1")
    result = run_script("glue/train_rte.sh", env, cwd=REPO, timeout=120)
    commands = [shlex.split(line) for line in result.stdout.splitlines() if line.startswith("torchrun ")]
    assert [(flag_value(c, "--max-epoch"), flag_value(c, "--lr"), flag_value(c, "--update-freq")) for c in commands] \
        == [("3", "1e-5", "1"), ("3", "2e-5", "1")]
    assert flag_value(commands[0], "--save-dir") == str(workspace / "saved" / "glue__train_rte" / "3_1e-5_1")


def test_missing_data_gives_a_clear_error(tmp_path, workspace):
    env = base_env(workspace, "caption/train_caption_stage1.sh")
    env["DATASET_ROOT"] = str(tmp_path)
    result = subprocess.run(["bash", str(RUN_SCRIPTS / "caption/train_caption_stage1.sh")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"error: data file not found: {tmp_path}/caption_data/caption_stage1_train.tsv" in result.stderr


def test_missing_checkpoint_gives_a_clear_error(tmp_path, workspace):
    """Run with ``sh`` like the original README (the scripts re-exec themselves with bash)."""
    env = base_env(workspace, "snli_ve/train_snli_ve.sh")
    env["CHECKPOINT_ROOT"] = str(tmp_path)
    result = subprocess.run(["sh", str(RUN_SCRIPTS / "snli_ve/train_snli_ve.sh")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"checkpoint to restore (--restore-file) not found: {tmp_path}/ofa_large.pt" in result.stderr
    assert "RESTORE_FILE=" in result.stderr


def test_unconstrained_vqa_needs_its_checkpoint(workspace):
    """The original's evaluate_vqa_unconstrained.sh takes the checkpoint as its second argument; without it: one line."""
    env = base_env(workspace, "vqa/evaluate_vqa_unconstrained.sh")
    result = subprocess.run(["bash", str(RUN_SCRIPTS / "vqa/evaluate_vqa_unconstrained.sh"), "val"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "error: give the unconstrainedly finetuned checkpoint" in result.stderr


def test_every_script_is_covered():
    assert sorted(EXPECTED) == SCRIPTS, "each script needs its original values in EXPECTED"
    assert set(REAL_TRAIN) <= set(TRAIN_SCRIPTS) and set(REAL_EVALUATE) <= set(EVALUATIONS)
    assert {Path(s).parts[0] for s in REAL_TRAIN} == set(TASK_FOLDERS)


# ---------------------------------------------------------------- real runs on the tiny dataset

@lru_cache(maxsize=None)
def _train(workspace: Path, script: str) -> tuple[int, str, Path]:
    """Run a training script once per session (its checkpoint also serves the evaluation scripts)."""
    env = tiny_env(workspace, script)
    # from the script's own folder, like the original's README (cd run_scripts/<task>; bash train_*.sh)
    result = run_script(script, env, cwd=(RUN_SCRIPTS / script).parent)
    for path in Path(env["SAVE_DIR"]).glob("*/*.pt"):  # only checkpoint_last.pt serves the evaluation scripts
        if path.name != "checkpoint_last.pt":
            path.unlink()
    return result.returncode, result.stdout + result.stderr, Path(env["SAVE_DIR"])


def trained_checkpoint(workspace: Path, script: str) -> Path:
    """checkpoint_last.pt of a training script: the run test_train_script_runs made (once per session)."""
    returncode, output, save_dir = _train(workspace, script)
    assert returncode == 0, f"{script} exited with {returncode}:\n{tail(output)}"
    (checkpoint,) = save_dir.glob("*/checkpoint_last.pt")
    return checkpoint


@pytest.mark.slow
@pytest.mark.parametrize("script", [s for s in TRAIN_SCRIPTS if RUN_ALL or s in REAL_TRAIN])
def test_train_script_runs(workspace, script):
    returncode, output, save_dir = _train(workspace, script)
    assert returncode == 0, f"{script} exited with {returncode}:\n{tail(output)}"
    checkpoints = sorted(save_dir.glob("*/checkpoint_last.pt"))
    assert len(checkpoints) == 1, f"{script}: expected one run folder with checkpoint_last.pt in {save_dir}"
    logs = sorted((workspace / "logs" / run_name(script)).glob(f"{checkpoints[0].parent.name}*.log"))
    assert logs, f"{script}: no log for run {checkpoints[0].parent.name}"
    log = logs[0].read_text(encoding="utf-8")
    command = log.splitlines()[1]
    assert "train.py" in command, "the log starts with the command"
    assert command.startswith("# torchrun " if script == TORCHRUN_SCRIPT else "# python "), command
    assert re.search(r"\bnum_updates 2\b", log), f"{script}: the run did not reach its 2 updates"


@pytest.mark.slow
@pytest.mark.parametrize("script", [s for s in sorted(EVALUATIONS) if RUN_ALL or s in REAL_EVALUATE])
def test_evaluate_script_runs(workspace, script):
    train_script, checkpoint_names, result_files = EVALUATIONS[script]
    trained = trained_checkpoint(workspace, train_script)
    for name in checkpoint_names:
        (workspace / "checkpoints" / name).unlink(missing_ok=True)
        (workspace / "checkpoints" / name).symlink_to(trained)
    # from the repository root this time (both must work)
    result = run_script(script, tiny_env(workspace, script), cwd=REPO)
    assert result.returncode == 0, f"{script} exited with {result.returncode}:\n{tail(result.stdout + result.stderr)}"
    for rel in result_files:
        assert (workspace / "results" / rel).is_file(), f"{script} did not write results/{rel}"
        records = json.loads((workspace / "results" / rel).read_text())
        assert len(records) == EVAL_ROWS and all(records), f"{script}: results/{rel} holds {records}"
        metrics = json.loads((workspace / "results" / rel.replace("_predict.json", "_metrics.json")).read_text())
        assert metrics["num_samples"] == EVAL_ROWS, metrics


# ---------------------------------------------------------------- the launcher's contract (run_scripts/common.sh)

def dry_run_missing(env: dict[str, str], script: str, *args: str) -> tuple[int, dict[str, str]]:
    """A dry run's exit status and its missing files: path -> the hint line under the error."""
    result = subprocess.run(["bash", str(RUN_SCRIPTS / script), *args], cwd=REPO, env={**env, "OFA_DRY_RUN": "1"},
                            capture_output=True, text=True, timeout=120)
    lines = result.stderr.splitlines()
    missing = {line.split(" not found: ", 1)[1]: lines[i + 1].strip() if i + 1 < len(lines) else ""
               for i, line in enumerate(lines) if line.startswith("error: ") and " not found: " in line}
    return result.returncode, missing


def test_dry_run_lists_every_missing_file(tmp_path, workspace):
    """Not just the first: data, CIDEr files and the checkpoint of caption stage 2, and all eight RefCOCO data sets
    with their three checkpoints (each named once); the commands are still printed."""
    env = {**base_env(workspace, "caption/train_caption_stage2.sh"), "DATASET_ROOT": str(tmp_path / "data"),
           "CHECKPOINT_ROOT": str(tmp_path / "ckpt")}
    returncode, missing = dry_run_missing(env, "caption/train_caption_stage2.sh")
    caption = tmp_path / "data" / "caption_data"
    assert returncode == 1
    assert sorted(missing) == sorted(str(p) for p in (
        caption / "caption_stage2_train.tsv", caption / "caption_val.tsv",
        caption / "cider_cached_tokens/coco-valid-words.p", caption / "cider_cached_tokens/coco-train-words.p",
        tmp_path / "ckpt" / "caption_stage1_best.pt"))
    result = subprocess.run(["bash", str(RUN_SCRIPTS / "refcoco/evaluate_refcoco.sh")], cwd=REPO,
                            env={**env, "OFA_DRY_RUN": "1"}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert len([line for line in result.stdout.splitlines() if line.startswith("torchrun ")]) == 8
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 8 + 3 and len(set(errors)) == len(errors)


@pytest.mark.parametrize("script,args,env_extra", [
    ("caption/train_caption_stage1.sh", [], {}),
    ("vqa/evaluate_vqa_beam.sh", ["val"], {}),
    ("refcoco/evaluate_refcoco.sh", [], {"EVAL_SETS": "refcocog:val"}),
    ("image_gen/evaluate_image_gen.sh", [], {}),
])
def test_every_hint_names_variables_the_script_reads(tmp_path, workspace, script, args, env_extra):
    """Each hint is "set NAME (or A, B, which it is built from)": NAME set to an existing file removes the error,
    and each of A, B set elsewhere moves the missing file."""
    env = {**base_env(workspace, script), "DATASET_ROOT": str(tmp_path / "data"),
           "CHECKPOINT_ROOT": str(tmp_path / "ckpt"), **env_extra}
    returncode, missing = dry_run_missing(env, script, *args)
    assert returncode == 1 and missing
    existing = tmp_path / "exists.tsv"
    existing.touch()
    for path, hint in missing.items():
        match = re.match(r"set ([A-Z0-9_]+)(.*)", hint)
        assert match, f"{script}: {path}: no hint"
        name, rest = match.group(1), match.group(2).strip()
        assert path not in dry_run_missing({**env, name: str(existing)}, script, *args)[1], f"{script} ignores {name}"
        if rest.startswith("(or "):
            for source in rest[len("(or "):rest.index(", which")].split(", "):
                moved = dry_run_missing({**env, source: str(tmp_path / "elsewhere")}, script, *args)[1]
                assert path not in moved, f"{script}: {path} does not depend on {source}"


SOURCE_CHECK = r"""
[[ -z "$3" ]] || set -euo pipefail
before="$(set +o; shopt -p)"
source "$1"
after="$(set +o; shopt -p)"
[[ "$before" == "$after" ]] || { diff <(echo "$before") <(echo "$after"); exit 3; }
echo "VIRTUAL_ENV=${VIRTUAL_ENV:-}"
declare -F ofa_train ofa_evaluate ofa_setup ofa_main ${2:-}
"""


@pytest.mark.parametrize("sourced,function,strict", [("common.sh", "", ""), ("common.sh", "", "strict"),
                                                     ("caption/train_caption_stage1.sh", "train_caption_stage1", "")])
def test_sourcing_changes_no_shell_option_and_installs_nothing(tmp_path, sourced, function, strict):
    """Sourcing common.sh (or a script, as variant scripts do) only defines functions: no strict mode switched on
    (nor off, for a caller that uses it), no venv created or activated (ofa_setup's explicit job), nothing run."""
    venv = tmp_path / "venv"
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)), "OFA_VENV": str(venv),
           "OFA_DRY_RUN": "1"}
    result = subprocess.run(["bash", "-c", SOURCE_CHECK, "check", str(RUN_SCRIPTS / sourced), function, strict],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VIRTUAL_ENV=\n" in result.stdout and not venv.exists()
    assert "torchrun" not in result.stdout and result.stderr == ""


SETUP_CHECK = r"""
source "$1" || exit
echo "PYTHON=$(command -v python)"
echo "PYTHONPATH=$PYTHONPATH"
"""


@pytest.mark.parametrize("given", ["OFA_VENV", "VIRTUAL_ENV"])
def test_setup_env_uses_the_callers_venv_and_installs_nothing(tmp_path, given):
    """OFA_VENV (the test suite passes this interpreter's) or the active venv is used as it is: no pip, no
    requirements stamp; a given venv without a python is a one-line error, not a new venv."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), given: str(venv)}
    result = subprocess.run(["bash", "-c", SETUP_CHECK, "check", str(RUN_SCRIPTS / "setup_env.sh")], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"PYTHON={venv}/bin/python\n" in result.stdout and f"PYTHONPATH={REPO}\n" in result.stdout
    assert "[setup]" not in result.stdout + result.stderr and sorted(os.listdir(venv)) == ["bin"]
    empty = tmp_path / "empty"
    result = subprocess.run(["bash", "-c", SETUP_CHECK, "check", str(RUN_SCRIPTS / "setup_env.sh")], cwd=tmp_path,
                            env={**env, given: str(empty)}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and f"{empty} (OFA_VENV or the active venv) has no bin/python" in result.stderr
    assert not empty.exists()


def readme_section(path: Path, title: str) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index(title)
    end = text.find("\n#", start + len(title))
    return text[start:] if end < 0 else text[start:end]


def test_readme_lists_every_checkpoint_the_scripts_expect():
    """The section the error messages point to names every file a script reads from CHECKPOINT_ROOT."""
    expected = set(DEFAULT_CHECKPOINTS)
    for script in RUN_SCRIPTS.glob("*/*.sh"):
        expected |= {m for m in re.findall(r"\{CHECKPOINT_ROOT\}/([^\s\"'{}]+)", script.read_text()) if "{" not in m}
    section = readme_section(REPO / "README.md", "### Checkpoints")
    local = (REPO / "checkpoints" / "README.md").read_text(encoding="utf-8")
    assert "see the README's checkpoints section" in (RUN_SCRIPTS / "common.sh").read_text()
    for name in sorted(expected):
        assert f"`{name}`" in section, f"README's checkpoints section does not name {name}"
        assert name in local, f"checkpoints/README.md does not name {name}"
