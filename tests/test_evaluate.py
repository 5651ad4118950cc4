"""``evaluate.py`` end to end: the original's caption predictions, user errors, tiny checkpoints per task."""
import copy
import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def e2e(shared) -> Path:
    """The reference folder of the original's caption evaluation (``test.tsv``, ``expected_predict.json``)."""
    return shared / "e2e_caption"


@pytest.fixture(scope="module")
def e2e_checkpoint(e2e_caption_checkpoint) -> Path:
    """The original-format checkpoint of ``e2e_caption/`` (the session's, shared with the other modules)."""
    return e2e_caption_checkpoint


def _overrides(**fields) -> str:
    """A ``--model-overrides`` value written the way the original's scripts write it (Python literal)."""
    return repr(fields)


def _caption_args(checkpoint: Path, results: Path, data: Path, coco_scores: bool = False) -> list[str]:
    # the command of the reference README, as the original's evaluate_caption.sh spells it (bpe_dir made absolute
    # so that the in-process tests do not depend on the working directory); the COCO scores (java METEOR, ~10 s)
    # only where they are tested
    overrides = '{"data":"%s","bpe_dir":"%s","eval_cider":False,"selected_cols":"0,4,2"%s}' % (
        data, REPO / "utils" / "BPE", "" if coco_scores else ',"skip_coco_scores":True')
    return [
        str(data), f"--path={checkpoint}", f"--user-dir={REPO}", "--task=caption", "--batch-size=2", "--seed=7",
        "--gen-subset=test", f"--results-path={results}", "--beam=5", "--max-len-b=16",
        "--no-repeat-ngram-size=3", "--cpu", "--num-workers=0", f"--model-overrides={overrides}",
    ]


def _run(args: list[str], launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    command = (launcher or [sys.executable]) + [str(REPO / "evaluate.py")] + args
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_e2e_caption_matches_original(e2e, e2e_checkpoint, tmp_path):
    proc = _run(_caption_args(e2e_checkpoint, tmp_path, e2e / "test.tsv", coco_scores=True))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    expected = json.loads((e2e / "expected_predict.json").read_text())
    assert json.loads((tmp_path / "test_predict.json").read_text()) == expected
    scores = json.loads((tmp_path / "test_metrics.json").read_text())
    assert scores["task"] == "caption" and scores["num_samples"] == 4
    assert 0 <= scores["Bleu_4"] <= 1 and scores["CIDEr"] > 0
    assert {"Bleu_1", "METEOR", "ROUGE_L", "cider"} <= set(scores)


@pytest.mark.slow
def test_hugging_face_round_trip_evaluates_alike(e2e, e2e_checkpoint, tmp_path):
    """A checkpoint converted to the HF layout and back keeps its task (configuration.json): the original's
    captions, with no --zero-shot and no --patch-image-size."""
    from scripts.convert_checkpoint import main as convert

    convert(["to-hf", str(e2e_checkpoint), str(tmp_path / "hf")])
    convert(["to-fairseq", str(tmp_path / "hf"), str(tmp_path / "back.pt")])
    proc = _run(_caption_args(tmp_path / "back.pt", tmp_path, e2e / "test.tsv"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads((tmp_path / "test_predict.json").read_text()) == json.loads(
        (e2e / "expected_predict.json").read_text())


@pytest.mark.slow
def test_e2e_caption_torchrun_two_processes(e2e, e2e_checkpoint, tmp_path):
    """Two gloo ranks each read half of the rows; rank 0 writes every sample once, in file order."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}"]
    proc = _run(_caption_args(e2e_checkpoint, tmp_path, e2e / "test.tsv"), launcher=launcher)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    expected = json.loads((e2e / "expected_predict.json").read_text())
    assert json.loads((tmp_path / "test_predict.json").read_text()) == expected
    assert json.loads((tmp_path / "test_metrics.json").read_text())["num_samples"] == 4


def _assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last_line = proc.stderr.strip().splitlines()[-1]
    assert last_line.startswith("evaluate.py: error:"), proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in last_line


@pytest.mark.slow
def test_missing_checkpoint_is_a_one_line_error(e2e, tmp_path):
    missing = tmp_path / "no_such_checkpoint.pt"
    proc = _run(_caption_args(missing, tmp_path, e2e / "test.tsv"))
    _assert_one_line_error(proc, "checkpoint not found", str(missing))


def _in_process_error(args: list[str]) -> str:
    """Run ``evaluate.cli_main`` in this process; return the message it exits with (printed as one line)."""
    import evaluate

    with pytest.raises(SystemExit) as exit_info:
        evaluate.cli_main(args)
    message = str(exit_info.value.code)
    assert message.startswith("evaluate.py: error:") and "\n" not in message, message
    return message


def test_task_checkpoint_mismatch_is_a_one_line_error(e2e, e2e_checkpoint, tmp_path):
    args = _caption_args(e2e_checkpoint, tmp_path, e2e / "test.tsv")
    args[args.index("--task=caption")] = "--task=refcoco"
    message = _in_process_error(args)
    assert "'caption' checkpoint: use --zero-shot to run it as 'refcoco' (or --task caption)" in message


def test_tsv_with_wrong_columns_is_a_one_line_error(e2e_checkpoint, tmp_path):
    data = tmp_path / "two_columns.tsv"
    data.write_text("1\ta cat\n2\ta dog\n")
    assert str(data) in _in_process_error(_caption_args(e2e_checkpoint, tmp_path, data=data))


def test_model_overrides_must_be_a_dict_literal(e2e, e2e_checkpoint, tmp_path):
    args = _caption_args(e2e_checkpoint, tmp_path, e2e / "test.tsv")
    args[-1] = "--model-overrides={'data': open('x')}"
    assert "--model-overrides" in _in_process_error(args)


# --- every task on a tiny randomly initialised checkpoint, rows from data_parity.pt -----------------------

TASK_RUNS = {
    # task -> (fixture task, extra evaluate.py flags, result keys, metric keys)
    "refcoco": ("refcoco", ["--beam=2", "--min-len=4", "--max-len-a=0", "--max-len-b=4"], {"uniq_id", "box"},
                {"score"}),
    "vqa_allcand": ("vqa_gen", [], {"question_id", "answer"}, {"vqa_score"}),
    "vqa_beam": ("vqa_gen", ["--beam-search-vqa-eval", "--beam=2", "--max-len-b=20", "--unnormalized"],
                 {"question_id", "answer"}, {"vqa_score"}),
    "snli_ve": ("snli_ve", [], {"uniq_id", "answer"}, {"snli_score"}),
    "image_classify": ("image_classify", [], {"uniq_id", "answer"}, {"score"}),
    "mnli": ("mnli", [], {"hyp", "ref"}, {"acc"}),
    "gigaword": ("gigaword", ["--beam=2", "--max-len-b=6"], {"hyp", "ref"}, {"rouge1_f1", "rouge2_f1", "rougeL_f1"}),
}


@pytest.fixture(scope="module")
def data_parity(shared):
    return torch.load(shared / "data_parity.pt", weights_only=True)


def _make_tiny_checkpoint(e2e_checkpoint: Path, task_name: str, task_cfg: dict, path: Path, seed: int = 0) -> None:
    """An original-format checkpoint for ``task_name``: the e2e model config, fresh random weights."""
    from fairseq import tasks
    from omegaconf import OmegaConf

    state = torch.load(e2e_checkpoint, weights_only=False)
    model_args = copy.deepcopy(state["cfg"]["model"])
    model_args.task = task_name
    for key, value in task_cfg.items():
        setattr(model_args, key, value)
    task = tasks.setup_task(OmegaConf.create({"_name": task_name, **task_cfg}))
    torch.manual_seed(seed)
    model = task.build_model(model_args)
    state["cfg"]["task"] = {"_name": task_name, **task_cfg}
    state["cfg"]["model"] = model_args
    state["model"] = model.state_dict()
    torch.save(state, path)


def _tiny_task_files(data_parity, task_name: str, folder: Path) -> tuple[Path, dict]:
    """The fixture's four rows of ``task_name`` as ``folder/test.tsv`` and the task config to read them."""
    fixture = data_parity[task_name]
    data = folder / "test.tsv"
    data.write_text(fixture["tsv"])
    return data, {**json.loads(fixture["config"]), "data": str(data), "bpe_dir": str(REPO / "utils" / "BPE")}


def _evaluate_tiny(checkpoint: Path, task_name: str, data: Path, results: Path, flags: list[str]) -> list[dict]:
    import evaluate

    evaluate.cli_main([
        str(data), f"--path={checkpoint}", f"--task={task_name}", "--batch-size=2", "--seed=7", "--cpu",
        "--num-workers=0", "--gen-subset=test", f"--results-path={results}", "--no-progress-bar",
        f"--model-overrides={_overrides(data=str(data), bpe_dir=str(REPO / 'utils' / 'BPE'))}", *flags,
    ])
    return json.loads((results / "test_predict.json").read_text())


@pytest.mark.parametrize("run", list(TASK_RUNS))
def test_tiny_checkpoint_every_task(run, tiny_task_checkpoint, tmp_path):
    task_name, flags, result_keys, metric_keys = TASK_RUNS[run]
    checkpoint, data, _ = tiny_task_checkpoint(task_name)
    results = tmp_path / "results"
    predictions = _evaluate_tiny(checkpoint, task_name, data, results, flags)
    assert len(predictions) == 4 and all(set(p) == result_keys for p in predictions)
    scores = json.loads((results / "test_metrics.json").read_text())
    assert scores["task"] == task_name and scores["num_samples"] == 4
    assert metric_keys <= set(scores)
    # one name per task: evaluate.py reports the metric validation logs and --best-checkpoint-metric selects
    assert _task(task_name).metric_name in scores
    if "box" in result_keys:
        assert all(len(p["box"]) == 4 for p in predictions)
    # the metric's value, recomputed from the predictions and the rows' references by hand
    rows = [line.split("\t") for line in data.read_text().splitlines()]
    expected = EXPECTED_METRIC.get(task_name)
    if expected is not None:
        assert scores[_task(task_name).metric_name] == pytest.approx(expected(predictions, rows), abs=1e-6)


def _iou(a, b):
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _vqa_credit(answer, column):
    credits = dict(reversed(item.split("|!+")) for item in column.split("&&"))
    return float(credits.get(answer, 0.0))


def _mean(values):
    values = list(values)
    return sum(values) / len(values)


# task -> metric(predictions, TSV rows of data_parity.pt); gigaword's ROUGE: by hand in test_compute_metrics_per_task
EXPECTED_METRIC = {
    "refcoco": lambda preds, rows: _mean(_iou(p["box"], [float(v) for v in row[3].split(",")]) >= 0.5
                                         for p, row in zip(preds, rows)),
    "vqa_gen": lambda preds, rows: _mean(_vqa_credit(p["answer"], row[3]) for p, row in zip(preds, rows)),
    "snli_ve": lambda preds, rows: _mean({"yes": "entailment", "no": "contradiction", "maybe": "neutral"}[p["answer"]]
                                         == row[5] for p, row in zip(preds, rows)),
    "image_classify": lambda preds, rows: _mean(p["answer"] == row[2] for p, row in zip(preds, rows)),
    "mnli": lambda preds, rows: _mean(p["hyp"] == p["ref"] for p in preds),
}


# --- merging and final metrics (no model needed) ---------------------------------------------------------

def _records(results, scores=None):
    scores = scores or [None] * len(results)
    return [{"result": r, "score": s, "references": None} for r, s in zip(results, scores)]


def _task(name: str, **cfg):
    """A task built from its config alone (no data), as fairseq registers it."""
    import tasks  # noqa: F401
    from fairseq.tasks import setup_task
    from omegaconf import OmegaConf

    return setup_task(OmegaConf.create({"_name": name, **cfg}))


@pytest.mark.slow
def test_compute_metrics_per_task():
    vqa = _records([{"question_id": i, "answer": "yes"} for i in range(4)], [1.0, 0.3, 0.0, 0.9])
    assert _task("vqa_gen").compute_metrics(vqa) == pytest.approx({"vqa_score": 0.55})
    boxes = _records([{"uniq_id": str(i), "box": [0, 0, 1, 1]} for i in range(4)], [1.0, 0.0, 1.0, 1.0])
    assert _task("refcoco").compute_metrics(boxes) == pytest.approx({"score": 0.75})
    assert _task("snli_ve").compute_metrics(boxes) == pytest.approx({"snli_score": 0.75})
    pairs = [("yes", "yes"), ("yes", "no"), ("no", "no"), ("no", "yes")]
    glue = _records([{"hyp": h, "ref": r} for h, r in pairs])
    assert _task("mrpc").compute_metrics(glue) == pytest.approx({"acc": 0.5, "f1": 0.5})
    assert _task("cola").compute_metrics(glue) == pytest.approx({"acc": 0.5, "mcc": 0.0})
    assert _task("sst2").compute_metrics(glue) == pytest.approx({"acc": 0.5})
    summaries = _records([{"hyp": "the cat sat", "ref": "the cat ran"}])
    assert _task("gigaword").compute_metrics(summaries) == pytest.approx(
        {"rouge1_f1": 100 * 2 / 3, "rouge2_f1": 50.0, "rougeL_f1": 100 * 2 / 3})
    captions = [{"result": {"image_id": str(i), "caption": caption}, "score": None, "references": refs}
                for i, (caption, refs) in enumerate([("a red car", ["a red car.", "red car"]),
                                                     ("two dogs", ["two dogs on grass"])])]
    scores = _task("caption").compute_metrics(captions)
    assert scores["cider"] > 0
    assert _task("caption", skip_coco_scores=True).compute_metrics(captions) == {"cider": scores["cider"]}
    # the same CIDEr-D as validation's per-sample scores of these captions, averaged
    task = _task("caption")
    per_sample = task.cider_scorer.score(["a red car", "two dogs"], [["a red car", "red car"], ["two dogs on grass"]])
    assert scores["cider"] == pytest.approx(per_sample.mean())


@pytest.mark.slow
def test_ema_eval_uses_the_stored_ema_weights(tiny_task_checkpoint, tmp_path):
    """Weights A as the model and B as its EMA: --ema-eval must summarize exactly as a checkpoint of B."""
    flags = TASK_RUNS["gigaword"][1]
    seed0, data, _ = tiny_task_checkpoint("gigaword", seed=0)
    seed1 = tiny_task_checkpoint("gigaword", seed=1)[0]
    with_ema = torch.load(seed0, weights_only=False)
    with_ema["extra_state"]["ema"] = torch.load(seed1, weights_only=False)["model"]
    torch.save(with_ema, tmp_path / "with_ema.pt")

    # (the two random models summarize differently, so ignoring the EMA weights would fail this)
    by_ema = _evaluate_tiny(tmp_path / "with_ema.pt", "gigaword", data, tmp_path / "ema", flags + ["--ema-eval"])
    assert by_ema == _evaluate_tiny(seed1, "gigaword", data, tmp_path / "b", flags)
    args = [str(data), f"--path={seed0}", "--task=gigaword", "--batch-size=2", "--ema-eval",
            f"--results-path={tmp_path}", f"--model-overrides={_overrides(data=str(data))}"]
    assert "holds no EMA weights" in _in_process_error(args)


def test_zero_shot_vqa_on_a_caption_checkpoint(e2e_checkpoint, data_parity, tmp_path):
    """--zero-shot builds the task from the command line and decodes answers without constraints or prefix."""
    import evaluate

    data = tmp_path / "vqa.tsv"
    data.write_text(data_parity["vqa_gen"]["tsv"])
    bpe_dir = str(REPO / "utils" / "BPE")
    evaluate.cli_main([
        str(data), f"--path={e2e_checkpoint}", "--task=vqa_gen", "--zero-shot", "--selected-cols=0,5,2,3,4",
        f"--bpe-dir={bpe_dir}", "--patch-image-size=96", "--beam-search-vqa-eval", "--batch-size=2", "--cpu",
        "--beam=2", "--max-len-b=5", "--gen-subset=test", f"--results-path={tmp_path}", "--no-progress-bar",
        f"--model-overrides={_overrides(bpe_dir=bpe_dir)}",
    ])
    predictions = json.loads((tmp_path / "test_predict.json").read_text())
    assert [p["question_id"] for p in predictions] == [21, 22, 23, 24]
    assert json.loads((tmp_path / "test_metrics.json").read_text())["task"] == "vqa_gen"


def test_zero_shot_refcoco_uses_the_zero_shot_generator(e2e_checkpoint, data_parity, tmp_path):
    """As the original's zero-shot step (refcoco and snli_ve too, not only VQA): no answer trie, and vocabulary
    constraints on the log-probs rather than the logits; configured once on the task (evaluate.py --zero-shot)."""
    from argparse import Namespace

    from tasks.loading import load_model_ensemble_and_task

    data, task_cfg = _tiny_task_files(data_parity, "refcoco", tmp_path)
    checkpoint = tmp_path / "checkpoint.pt"
    _make_tiny_checkpoint(e2e_checkpoint, "refcoco", {**task_cfg, "constraint_range": "58457,59457"}, checkpoint)
    models, _, task = load_model_ensemble_and_task([str(checkpoint)])
    models[0].eval()
    task.load_dataset("test")
    dataset = task.dataset("test")
    sample = dataset.collater([dataset[i] for i in range(len(dataset))])
    args = Namespace(beam=2, min_len=4, max_len_a=0, max_len_b=4)
    generator = task.build_generator(models, args)
    with torch.no_grad():
        results, _ = task.eval_step(generator, models, sample)
        assert not generator.zero_shot
        task.zero_shot = True
        zero_shot_generator = task.build_generator(models, args)
        zero_shot_results, hits = task.eval_step(zero_shot_generator, models, sample)
    assert zero_shot_generator.zero_shot and zero_shot_generator.constraint_trie is None
    assert [r["uniq_id"] for r in zero_shot_results] == [r["uniq_id"] for r in results] and len(hits) == 4
    assert all(len(r["box"]) == 4 for r in zero_shot_results)


def test_tiny_checkpoint_image_gen(e2e_checkpoint, tmp_path):
    """Sampled codes -> tiny random VQGAN -> ranked by a tiny random CLIP; images kept under gen_images_path."""
    import open_clip

    image_gen_fixtures = _load_module("image_gen_fixtures", REPO / "tests" / "image_gen" / "conftest.py")
    CODE_IMAGE_SIZE, NUM_CODES = image_gen_fixtures.CODE_IMAGE_SIZE, image_gen_fixtures.NUM_CODES
    vqgan_model, vqgan_config = image_gen_fixtures.write_vqgan_files(tmp_path / "vqgan")  # their tiny VQGAN
    torch.manual_seed(0)
    clip = open_clip.CLIP(
        embed_dim=32,
        vision_cfg=open_clip.CLIPVisionCfg(layers=1, width=64, patch_size=8, image_size=32),
        text_cfg=open_clip.CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=1, layers=1),
        quick_gelu=True,
    )
    torch.save(clip.state_dict(), tmp_path / "clip.pt")
    data = tmp_path / "test.tsv"
    codes = " ".join(str(i) for i in range(NUM_CODES))
    data.write_text(f"0\t{codes}\ta red car\n1\t{codes}\ttwo dogs on the grass\n")
    images = tmp_path / "images"
    task_cfg = {"data": str(data), "bpe_dir": str(REPO / "utils" / "BPE"), "selected_cols": "0,2,1",
                "code_image_size": CODE_IMAGE_SIZE, "constraint_range": "50265,58457",
                "vqgan_model_path": str(vqgan_model), "vqgan_config_path": str(vqgan_config),
                "clip_model_path": str(tmp_path / "clip.pt"), "gen_images_path": str(images)}
    checkpoint = tmp_path / "checkpoint.pt"
    _make_tiny_checkpoint(e2e_checkpoint, "image_gen", task_cfg, checkpoint)
    flags = ["--beam=2", "--sampling-topk=256", f"--min-len={NUM_CODES}", "--max-len-a=0", f"--max-len-b={NUM_CODES}"]
    predictions = _evaluate_tiny(checkpoint, "image_gen", data, tmp_path / "results", flags)
    assert [p["sample_id"] for p in predictions] == ["0", "1"]
    scores = json.loads((tmp_path / "results" / "test_metrics.json").read_text())
    assert scores["score"] == pytest.approx(sum(p["score"] for p in predictions) / 2)
    # the numbers themselves (seeded tiny model, VQGAN and CLIP; evaluate.py --seed 7): CLIP scores of the best
    # of 2 samples per caption
    assert [p["score"] for p in predictions] == pytest.approx([0.042219, -0.203957], abs=1e-3)
    assert len(list((images / "all_results").glob("*.png"))) == 4  # 2 captions x beam 2
    assert sorted(p.name for p in (images / "top1").glob("*.png")) == ["a red car_0.png", "two dogs on the grass_0.png"]


def test_positional_data_is_read_and_string_question_ids_kept(e2e_checkpoint, data_parity, tmp_path):
    """DATA alone names the file (no data in --model-overrides); non-numeric VQA ids are written as strings."""
    import evaluate

    data, task_cfg = _tiny_task_files(data_parity, "vqa_gen", tmp_path)
    data.write_text("".join("q" + line + "\n" for line in data.read_text().splitlines()))
    _make_tiny_checkpoint(e2e_checkpoint, "vqa_gen", task_cfg, tmp_path / "vqa.pt")
    args = [str(data), f"--path={tmp_path / 'vqa.pt'}", "--task=vqa_gen", "--batch-size=2", "--cpu",
            "--num-workers=0", "--gen-subset=test", f"--results-path={tmp_path / 'results'}", "--no-progress-bar",
            f"--model-overrides={_overrides(data='/nonexistent/train.tsv,/nonexistent/valid.tsv')}"]
    assert "differ: give one" in _in_process_error(args)
    evaluate.cli_main(args[:-1] + [f"--model-overrides={_overrides(bpe_dir=str(REPO / 'utils' / 'BPE'))}"])
    predictions = json.loads((tmp_path / "results" / "test_predict.json").read_text())
    assert [p["question_id"] for p in predictions] == [line.split("\t")[0] for line in data.read_text().splitlines()]
