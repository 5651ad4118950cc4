"""predict.py --requests: one question per image in one process, bad lines named and answered in place."""
import io
import json
import sys

import pytest
import torch

from test_evaluate import _make_tiny_checkpoint, _tiny_task_files
from test_predict import _image_files


def tiny_checkpoint_with_rows(task_name: str, image_column: int, e2e_checkpoint, shared, folder):
    """A tiny random ``task_name`` checkpoint, its fixture rows' images (files) and texts (column 2)."""
    data, task_cfg = _tiny_task_files(torch.load(shared / "data_parity.pt", weights_only=True), task_name, folder)
    checkpoint = folder / f"{task_name}.pt"
    _make_tiny_checkpoint(e2e_checkpoint, task_name, task_cfg, checkpoint)
    texts = [line.split("\t")[2] for line in data.read_text().splitlines()]
    return checkpoint, _image_files(data.read_text(), image_column, folder / "images"), texts


@pytest.fixture(scope="module")
def vqa(e2e_caption_checkpoint, shared, tmp_path_factory):
    """A tiny VQA checkpoint, its rows' images and questions."""
    return tiny_checkpoint_with_rows("vqa_gen", 5, e2e_caption_checkpoint, shared, tmp_path_factory.mktemp("vqa"))


def test_requests_file_answers_each_question_in_order(vqa, tmp_path, capsys):
    import predict
    from inference import OFAPredictor

    checkpoint, images, questions = vqa
    predictor = OFAPredictor.from_checkpoint(checkpoint, beam=2, batch_size=1)
    expected = [predictor.answer(image, question) for image, question in zip(images, questions)]
    # the Python API takes the records, batched
    predictor.batch_size = 3
    records = [{"image": str(image), "question": question} for image, question in zip(images, questions)]
    assert [o["answer"] for o in predictor.predict(records)] == expected

    lines = [json.dumps({"image": f"images/{images[0].name}", "question": questions[0], "id": 7}),
             "{not json",
             json.dumps({"image": str(images[1]), "text": questions[1]}),
             "",
             json.dumps({"image": "missing.jpg", "question": "what?"}),  # fails inside its batch
             json.dumps({"image": str(images[2]), "question": questions[2], "colour": "red"}),
             json.dumps({"image": str(images[3]), "question": questions[3]}),
             json.dumps({"question": "no image"}),
             json.dumps({"image": str(images[2]), "question": questions[2]})]
    requests = images[0].parent.parent / "requests.jsonl"  # relative paths: from the file's folder
    requests.write_text("\n".join(lines) + "\n")
    out = tmp_path / "answers.jsonl"
    with pytest.raises(SystemExit, match="4 of 8 requests failed"):
        predict.main(["--path", str(checkpoint), "--requests", str(requests), "--beam", "2", "--batch-size", "3",
                      "--output", str(out), "--draw", str(tmp_path / "drawn"), "--no-progress-bar"])
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert got[0] == {"image": f"images/{images[0].name}", "id": 7, "answer": expected[0]}
    assert got[1]["line"] == 2 and got[1]["error"].startswith(f"{requests}:2: not a JSON object")
    assert got[2] == {"image": str(images[1]), "answer": expected[1]}
    assert got[3]["line"] == 5 and "missing.jpg: image file not found" in got[3]["error"]
    assert got[4]["line"] == 6 and "unknown key(s) 'colour'" in got[4]["error"]
    assert got[5] == {"image": str(images[3]), "answer": expected[3]}
    assert got[6] == {"line": 8, "error": f"{requests}:8: no \"image\" (the image file's path)"}
    assert got[7] == {"image": str(images[2]), "answer": expected[2]}
    assert "requests.jsonl:5:" in capsys.readouterr().err  # errors also on the console
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == [f"row{i}.png" for i in range(4)]

    # stdin; paths relative to the current folder; per-line text with --question is refused
    monkey_stdin = io.StringIO(lines[2] + "\n")
    sys_stdin, sys.stdin = sys.stdin, monkey_stdin
    try:
        predict.main(["--path", str(checkpoint), "--requests", "-", "--beam", "2", "--no-progress-bar"])
    finally:
        sys.stdin = sys_stdin
    assert json.loads(capsys.readouterr().out) == {"image": str(images[1]), "answer": expected[1]}
    with pytest.raises(SystemExit, match="each line gives its own"):
        predict.main(["--path", str(checkpoint), "--requests", "-", "--question", "why?"])
    with pytest.raises(SystemExit, match="image files/folders or --requests"):
        predict.main(["--path", str(checkpoint)])


def test_help_lists_released_names():
    import predict

    text = predict.build_parser().format_help()
    assert "ofa:<name>" in text and "caption_large_best_clean" in " ".join(text.split())
