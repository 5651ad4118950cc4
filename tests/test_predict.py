"""predict.py and the Python API: the same outputs as evaluate.py on the same rows, files in, JSON lines out."""
import json
from pathlib import Path

import pytest
from PIL import Image

from data.images import base64_bytes
from test_evaluate import _evaluate_tiny

REPO = Path(__file__).resolve().parents[1]


def _image_files(tsv: str, image_column: int, folder: Path) -> list[Path]:
    """The images of a TSV's rows as files ``folder/row<i>.<ext>`` (the bytes the base64 column holds)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, line in enumerate(tsv.splitlines()):
        raw = base64_bytes(line.split("\t")[image_column])
        suffix = "jpg" if raw.startswith(b"\xff\xd8") else "png"
        path = folder / f"row{i}.{suffix}"
        path.write_bytes(raw)
        paths.append(path)
    return paths


def test_caption_api_and_cli_equal_evaluate(shared, e2e_caption_checkpoint, tmp_path):
    """evaluate.py writes the original's captions on e2e_caption/test.tsv (test_evaluate.py); so do these."""
    from inference import OFAPredictor
    import predict

    expected = [p["caption"] for p in json.loads((shared / "e2e_caption" / "expected_predict.json").read_text())]
    images = _image_files((shared / "e2e_caption" / "test.tsv").read_text(), 4, tmp_path / "images")
    predictor = OFAPredictor.from_checkpoint(e2e_caption_checkpoint, batch_size=3)
    assert [predictor.caption(path) for path in images[:1]] == expected[:1]
    with Image.open(images[1]) as image:  # an in-memory image works too
        assert predictor.caption(image.copy()) == expected[1]
    # a free instruction replaces the prompt: the caption prompt itself gives the caption
    assert predictor.generate(images[2], "what does the image describe?") == expected[2]

    out = tmp_path / "captions.jsonl"
    predict.main(["--path", str(e2e_caption_checkpoint), str(tmp_path / "images"), "--batch-size", "3",
                  "--output", str(out), "--draw", str(tmp_path / "drawn"), "--no-progress-bar"])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["image"] for line in lines] == [str(p) for p in images]
    assert [line["caption"] for line in lines] == expected
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == [f"row{i}.png" for i in range(4)]


@pytest.mark.parametrize("mode", ["beam", "allcand"])
def test_vqa_answers_equal_evaluate(mode, tiny_task_checkpoint, tmp_path):
    from inference import OFAPredictor, Request

    checkpoint, data, _ = tiny_task_checkpoint("vqa_gen")
    flags = ["--beam-search-vqa-eval", "--beam=2", "--max-len-b=20", "--unnormalized"] if mode == "beam" else []
    expected = [p["answer"] for p in _evaluate_tiny(checkpoint, "vqa_gen", data, tmp_path / "results", flags)]

    rows = [line.split("\t") for line in data.read_text().splitlines()]
    images = _image_files(data.read_text(), 5, tmp_path / "images")
    generation = {"beam": 2, "max_len_b": 20} if mode == "beam" else {}
    predictor = OFAPredictor.from_checkpoint(checkpoint, all_candidates=mode == "allcand", batch_size=2, **generation)
    outputs = list(predictor.predict([Request(path, row[2]) for path, row in zip(images, rows)]))
    assert [o["answer"] for o in outputs] == expected
    assert predictor.answer(images[0], rows[0][2]) == expected[0]


def test_refcoco_boxes_equal_evaluate_in_input_pixels(tiny_task_checkpoint, tmp_path):
    from inference import OFAPredictor
    import predict

    checkpoint, data, _ = tiny_task_checkpoint("refcoco")
    flags = ["--beam=2", "--min-len=4", "--max-len-a=0", "--max-len-b=4"]
    expected = [p["box"] for p in _evaluate_tiny(checkpoint, "refcoco", data, tmp_path / "results", flags)]

    rows = [line.split("\t") for line in data.read_text().splitlines()]
    images = _image_files(data.read_text(), 4, tmp_path / "images")
    predictor = OFAPredictor.from_checkpoint(checkpoint, beam=2, no_repeat_ngram_size=0)  # evaluate.py's flags
    for path, row, box in zip(images, rows, expected):
        assert predictor.ground(path, row[2]) == pytest.approx(box, abs=0.01)

    out = tmp_path / "boxes.jsonl"
    predict.main(["--path", str(checkpoint), "--text", rows[0][2], "--beam", "2", "--no-repeat-ngram-size", "0",
                  str(images[0]), "--output", str(out), "--no-progress-bar"])
    assert json.loads(out.read_text())["box"] == pytest.approx(expected[0], abs=0.01)


def test_user_errors_are_one_line(e2e_caption_checkpoint, tmp_path):
    import predict

    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not an image")
    with pytest.raises(SystemExit, match=r"notes\.jpg: .*image"):
        predict.main(["--path", str(e2e_caption_checkpoint), str(not_image), "--no-progress-bar"])
    with pytest.raises(SystemExit, match="'caption' checkpoint: use --zero-shot"):
        predict.main(["--path", str(e2e_caption_checkpoint), "--task", "refcoco", "--text", "x", str(not_image)])
    with pytest.raises(SystemExit, match="task caption takes no text"):  # not silently ignored
        predict.main(["--path", str(e2e_caption_checkpoint), "--question", "why?", str(not_image)])
    with pytest.raises(SystemExit, match="needs a referring expression"):
        predict.main(["--path", str(e2e_caption_checkpoint), "--task", "refcoco", "--zero-shot", str(not_image)])
    # the supported tasks are those whose class makes rows from requests
    with pytest.raises(SystemExit, match=r"does not support task 'gigaword' \(supported: caption, image_classify, ocr, "
                                         r"refcoco, snli_ve, vqa_gen\)"):
        predict.main(["--path", str(e2e_caption_checkpoint), "--task", "gigaword", "--zero-shot", str(not_image)])


@pytest.mark.slow
def test_entail_and_classify_equal_evaluate(tiny_task_checkpoint, tmp_path):
    """OFAPredictor.entail (hypothesis and premise) and .classify, and predict.py for snli_ve and image_classify,
    give evaluate.py's answers on the same rows."""
    from inference import OFAPredictor
    from tasks.mm_tasks.snli_ve import ENTAILMENT_LABELS
    import predict

    checkpoint, data, _ = tiny_task_checkpoint("snli_ve")
    expected = [p["answer"] for p in _evaluate_tiny(checkpoint, "snli_ve", data, tmp_path / "snli_ve", [])]
    rows = [line.split("\t") for line in data.read_text().splitlines()]  # uid, id, image, hypothesis, premise, label
    images = _image_files(data.read_text(), 2, tmp_path / "snli_ve_images")
    predictor = OFAPredictor.from_checkpoint(checkpoint)
    labels = [predictor.entail(path, row[3], premise=row[4]) for path, row in zip(images, rows)]
    assert labels == [ENTAILMENT_LABELS.get(answer, answer) for answer in expected]
    assert set(labels) <= {"entailment", "contradiction", "neutral"}
    out = tmp_path / "snli_ve.jsonl"
    predict.main(["--path", str(checkpoint), "--text", rows[0][3], "--premise", rows[0][4], str(images[0]),
                  "--output", str(out), "--no-progress-bar"])
    assert json.loads(out.read_text()) == {"image": str(images[0]), "answer": expected[0], "label": labels[0]}

    checkpoint, data, task_cfg = tiny_task_checkpoint("image_classify")
    expected = [p["answer"] for p in _evaluate_tiny(checkpoint, "image_classify", data, tmp_path / "classify", [])]
    images = _image_files(data.read_text(), 0, tmp_path / "classify_images")
    predictor = OFAPredictor.from_checkpoint(checkpoint)
    assert [predictor.classify(path) for path in images] == expected
    assert set(expected) <= set(json.loads(task_cfg["ans2label_dict"]))
    out = tmp_path / "classify.jsonl"
    predict.main(["--path", str(checkpoint), *map(str, images), "--output", str(out), "--no-progress-bar"])
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"image": str(path), "label": label} for path, label in zip(images, expected)]
