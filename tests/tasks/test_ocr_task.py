"""The ocr task and OFA-CN on the bundled tiny data: rows load with Chinese prompts, OCR labels are normalised,
a small ocr run learns (train.py), validates with ``acc`` and evaluates (evaluate.py); user errors are one line."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TRAIN_ROWS, VALID_ROWS, BATCH_SIZE, EPOCHS = 48, 8, 8, 2
SMALL_MODEL = ["--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "64",
               "--decoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128", "--decoder-ffn-embed-dim", "128",
               "--encoder-attention-heads", "2", "--decoder-attention-heads", "2", "--resnet-type", "resnet18"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from dataset.make_tiny_dataset import make_tiny_dataset

    root = tmp_path_factory.mktemp("tiny_cn")
    make_tiny_dataset(root, tasks=["caption_cn", "refcoco_cn", "ocr"], image_size=48)
    return root


def _head(path: Path, rows: int, out: Path) -> Path:
    out.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:rows]), encoding="utf-8")
    return out


def _load(task_name: str, data: Path, split: str = "valid", **options):
    import tasks  # noqa: F401
    from fairseq.tasks import setup_task
    from omegaconf import OmegaConf

    task = setup_task(OmegaConf.create({"_name": task_name, "data": f"{data},{data}", **options}))
    task.load_dataset(split)
    dataset = task.datasets[split]
    return task, dataset.collater([dataset[i] for i in range(len(dataset))])


def _text(task, tokens: torch.Tensor) -> str:
    keep = [t for t in tokens.tolist() if t not in (task.tgt_dict.bos(), task.tgt_dict.eos(), task.tgt_dict.pad())]
    return task.bpe.decode(task.tgt_dict.string(keep)).replace(" ", "")


def test_tiny_chinese_rows_load_with_chinese_prompts(tiny, tmp_path):
    task, batch = _load("caption", _head(tiny / "caption_cn" / "valid.tsv", 4, tmp_path / "c.tsv"), bpe="bert",
                        selected_cols="0,4,2", patch_image_size=48)
    assert _text(task, batch["net_input"]["src_tokens"][0]) == "图片描述了什么内容?"
    assert not (batch["target"] == task.tgt_dict.index("[UNK]")).any()  # every character is in the vocabulary
    assert "有一个" in _text(task, batch["target"][0])
    task, batch = _load("refcoco", _head(tiny / "refcoco_cn" / "valid.tsv", 4, tmp_path / "r.tsv"), bpe="bert",
                        selected_cols="0,4,2,3", patch_image_size=48)
    assert _text(task, batch["net_input"]["src_tokens"][0]).startswith("这段文字\"")
    assert batch["target"][:, :4].ge(task.tgt_dict.index("<bin_0>")).all()


def test_tiny_ocr_labels_are_normalised(tiny):
    import unicodedata

    rows = [line.split("\t") for line in (tiny / "ocr" / "valid.tsv").read_text(encoding="utf-8").splitlines()]
    assert any(unicodedata.normalize("NFKC", label) != label for _, _, label in rows)  # some are full-width
    task, batch = _load("ocr", tiny / "ocr" / "valid.tsv", bpe="bert", selected_cols="0,1,2", patch_image_size=64)
    assert _text(task, batch["net_input"]["src_tokens"][0]) == "图片上的文字是什么?"
    assert [_text(task, t) for t in batch["target"]] == [unicodedata.normalize("NFKC", r[2]).lower() for r in rows]
    assert batch["net_input"]["patch_images"].shape[1:] == (3, 64, 64)


def test_ocr_with_gpt2_bpe_uses_the_english_prompt_and_words(make_task, b64_image):
    task, dataset = make_task("ocr", [["1", b64_image((60, 20)), "Hello  Big World"]], selected_cols="0,1,2",
                              patch_image_size=64, max_tgt_length=2)
    sample = dataset[0]
    assert task.bpe.decode(task.tgt_dict.string(sample["source"][1:-1])) == " what are the texts on the image?"
    assert task.bpe.decode(task.tgt_dict.string(sample["target"])) == " hello big"


def test_bert_dataset_survives_pickling_for_dataloader_workers(tiny):
    import pickle

    task, _ = _load("ocr", tiny / "ocr" / "valid.tsv", bpe="bert", selected_cols="0,1,2", patch_image_size=64)
    dataset = task.datasets["valid"]
    copy = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(copy[0]["target"], dataset[0]["target"])
    assert torch.equal(copy[0]["patch_image"], dataset[0]["patch_image"])


def test_document_images_need_patch_size_480(make_task, b64_image):
    with pytest.raises(ValueError, match="--is-document needs --patch-image-size 480"):
        make_task("ocr", [["1", b64_image((60, 20)), "x"]], selected_cols="0,1,2", patch_image_size=64,
                  is_document=True)[1][0]


def test_bpe_errors_are_one_line(tmp_path):
    import tasks  # noqa: F401
    from fairseq.tasks import setup_task
    from omegaconf import OmegaConf

    with pytest.raises(FileNotFoundError, match=r"--bpe bert: .*utils/BPE/vocab.txt not found"):
        setup_task(OmegaConf.create({"_name": "ocr", "bpe": "bert", "bpe_dir": str(REPO / "utils" / "BPE")}))
    with pytest.raises(ValueError, match="--bpe sentencepiece: choose gpt2"):
        setup_task(OmegaConf.create({"_name": "ocr", "bpe": "sentencepiece"}))


def test_ocr_scores():
    from utils.metrics import edit_distance, ocr_scores

    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "ab") == 2
    scores = ocr_scores(["ab12", "中国", ""], ["ab12", "中华", ""])
    assert scores["acc"] == pytest.approx(2 / 3)
    assert scores["ned"] == pytest.approx(1 - (0 + 0.5 + 0) / 3)


def _train(data: str, save_dir: Path, *extra: str) -> str:
    args = [data, "--user-dir", str(REPO), "--arch", "ofa_tiny", "--bpe", "bert", "--max-src-length", "16",
            "--criterion", "adjust_label_smoothed_cross_entropy", "--optimizer", "adam", "--lr", "5e-3",
            "--lr-scheduler", "polynomial_decay", "--warmup-ratio", "0.1", "--batch-size", str(BATCH_SIZE),
            *SMALL_MODEL, "--num-workers", "0", "--cpu", "--seed", "1", "--log-format", "json", "--log-interval", "1",
            "--save-dir", str(save_dir), "--no-epoch-checkpoints", *extra]
    result = subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=ENV,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def ocr_run(tiny, module_tmp_dir):
    folder = module_tmp_dir("ocr_run")
    train = _head(tiny / "ocr" / "train.tsv", TRAIN_ROWS, folder / "train.tsv")
    valid = _head(tiny / "ocr" / "valid.tsv", VALID_ROWS, folder / "valid.tsv")
    stdout = _train(f"{train},{valid}", folder / "checkpoints", "--task", "ocr", "--selected-cols", "0,1,2",
                    "--patch-image-size", "64", "--max-tgt-length", "12", "--label-smoothing", "0.1",
                    "--max-epoch", str(EPOCHS), "--eval-args", '{"beam": 2, "max_len_b": 8}',
                    "--best-checkpoint-metric", "acc", "--maximize-best-checkpoint-metric")
    return folder, stdout


@pytest.mark.slow
def test_ocr_run_learns_and_validates_with_accuracy(ocr_run):
    _, stdout = ocr_run
    losses = [float(json.loads(line.split("| train_inner | ", 1)[1])["loss"])
              for line in stdout.splitlines() if "| train_inner |" in line]
    assert len(losses) == EPOCHS * math.ceil(TRAIN_ROWS / BATCH_SIZE)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 1.0, losses
    valid = [json.loads(line.split("| valid | ", 1)[1]) for line in stdout.splitlines() if "| valid |" in line]
    assert len(valid) == EPOCHS and all(0.0 <= float(v["valid_acc"]) <= 1.0 for v in valid)


def _evaluate_ocr(checkpoint: Path, data: Path, results: Path, *extra: str) -> list[dict]:
    import evaluate

    evaluate.cli_main([
        str(data), f"--path={checkpoint}", f"--user-dir={REPO}", "--task=ocr", "--batch-size=2", "--beam=2",
        "--max-len-b=8", "--cpu", "--num-workers=0", "--gen-subset=test", f"--results-path={results}",
        "--no-progress-bar", f"--model-overrides={{'data': '{data}'}}", *extra,
    ])
    return json.loads((results / "test_predict.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_evaluate_ocr_checkpoint_and_its_conversion(ocr_run, tiny):
    """evaluate.py --task ocr; the checkpoint converted to the ModelScope layout (a 30325-symbol vocabulary, as
    ModelScope's Chinese and OCR models) and back evaluates alike with --zero-shot --bpe bert."""
    from data.bert_bpe import OFA_CN_DICTIONARY_SIZE
    from scripts.convert_checkpoint import main as convert

    folder, _ = ocr_run
    data = _head(tiny / "ocr" / "test.tsv", 4, folder / "test.tsv")
    predictions = _evaluate_ocr(folder / "checkpoints" / "checkpoint_best.pt", data, folder / "results")
    assert len(predictions) == 4 and all(set(p) == {"uniq_id", "hyp", "ref"} for p in predictions)
    assert all(" " not in p["ref"] and p["ref"] == p["ref"].lower() for p in predictions)
    scores = json.loads((folder / "results" / "test_metrics.json").read_text())
    assert scores["task"] == "ocr" and scores["num_samples"] == 4 and {"acc", "ned"} <= set(scores)

    # predict.py's API reads the same images from files and writes the same text
    from data.images import base64_bytes
    from inference import OFAPredictor, Request

    images = []
    for i, line in enumerate(data.read_text(encoding="utf-8").splitlines()):
        images.append(folder / f"ocr_{i}.png")
        images[-1].write_bytes(base64_bytes(line.split("\t")[1]))
    predictor = OFAPredictor.from_checkpoint(folder / "checkpoints" / "checkpoint_best.pt", beam=2, max_len_b=8)
    assert [out["text"] for out in predictor.predict([Request(image) for image in images])] == \
        [p["hyp"] for p in predictions]

    assert convert(["to-hf", str(folder / "checkpoints" / "checkpoint_best.pt"), str(folder / "hf"),
                    "--allow-position-mismatch"]) == 0  # trained without --disable-entangle
    assert json.loads((folder / "hf" / "config.json").read_text())["vocab_size"] == OFA_CN_DICTIONARY_SIZE
    assert convert(["to-fairseq", str(folder / "hf"), str(folder / "converted.pt")]) == 0
    options = ["--zero-shot", "--selected-cols=0,1,2", "--patch-image-size=64", "--max-tgt-length=12"]
    with pytest.raises(SystemExit, match="OFA-CN.s 30325-symbol BERT vocabulary .* pass --bpe bert"):
        _evaluate_ocr(folder / "converted.pt", data, folder / "gpt2", *options)
    assert _evaluate_ocr(folder / "converted.pt", data, folder / "converted", *options, "--bpe=bert") == predictions

@pytest.mark.slow
def test_generate_caption_cn_script_writes_chinese_captions(tiny, tmp_path):
    """A Chinese caption checkpoint (2 updates of train.py --bpe bert) through run_scripts/caption/generate_caption_cn.sh."""
    train = _head(tiny / "caption_cn" / "train.tsv", 16, tmp_path / "train.tsv")
    test = _head(tiny / "caption_cn" / "test.tsv", 4, tmp_path / "test.tsv")
    _train(f"{train},{test}", tmp_path / "checkpoints", "--task", "caption", "--selected-cols", "0,4,2",
           "--patch-image-size", "48", "--max-update", "2", "--disable-validation")
    env = {**ENV, "NUM_GPUS": "0", "LAUNCHER": "python", "DATA": str(test), "SELECTED_COLS": "0,4,2",
           "CHECKPOINT": str(tmp_path / "checkpoints" / "checkpoint_last.pt"), "RESULTS_PATH": str(tmp_path / "results"),
           "LOG_DIR": str(tmp_path / "logs"), "BATCH_SIZE": "2"}
    result = subprocess.run(["bash", str(REPO / "run_scripts" / "caption" / "generate_caption_cn.sh"),
                             "--beam=2", "--max-len-b=6"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    predictions = json.loads((tmp_path / "results" / "test_predict.json").read_text(encoding="utf-8"))
    ids = [line.split("\t")[0] for line in test.read_text(encoding="utf-8").splitlines()]
    assert [p["image_id"] for p in predictions] == ids
    assert all(isinstance(p["caption"], str) for p in predictions)
