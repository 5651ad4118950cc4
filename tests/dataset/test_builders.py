"""dataset/build_tsv.py: annotations + image files -> TSVs that the tasks' datasets read back as built."""
import json
import pickle
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

from dataset import build_tsv, inspect_row
from data.mm_data.vqa_gen_dataset import answer_scores, normalize_answer

COLORS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i, color in enumerate(COLORS.values(), start=1):
        Image.new("RGB", (40 + 8 * i, 32), color).save(folder / f"{i:03d}.jpg")
    return folder


def _read(path: Path, task: str, split: str = "valid", **options):
    """The task's dataset over ``path`` (fairseq's registry; the selected columns the builder printed)."""
    import tasks  # noqa: F401
    from fairseq.tasks import setup_task

    from dataset.builders import selected_cols

    task = setup_task(OmegaConf.create({"_name": task, "data": f"{path},{path}", "selected_cols": selected_cols(task),
                                        "patch_image_size": 32, **options}))
    task.load_dataset(split)
    return task, task.datasets[split]


def _text(task, tokens) -> str:
    return task.bpe.decode(task.tgt_dict.string(tokens[tokens.ne(task.tgt_dict.pad())][:-1])).strip()


def test_coco_captions_round_trip(images, tmp_path, capsys):
    annotations = tmp_path / "captions.json"
    annotations.write_text(json.dumps({
        "images": [{"id": i, "file_name": f"{i:03d}.jpg"} for i in (1, 2)],
        "annotations": [{"id": 10, "image_id": 1, "caption": "A red\tsquare."},
                        {"id": 11, "image_id": 1, "caption": "a red block"},
                        {"id": 12, "image_id": 2, "caption": "a green square"}]}))
    build_tsv.main(["coco-caption", "--annotations", str(annotations), "--images", str(images), "--split", "train",
                    "--out", str(tmp_path / "train.tsv"), "--no-progress-bar"])
    assert "wrote 3 rows" in capsys.readouterr().out
    task, train = _read(tmp_path / "train.tsv", "caption", split="train")
    assert [_text(task, train[i]["target"]) for i in range(3)] == ["A red square", "a red block", "a green square"]

    build_tsv.main(["coco-caption", "--annotations", str(annotations), "--images", str(images), "--split", "test",
                    "--out", str(tmp_path / "test.tsv"), "--references-out", str(tmp_path / "refs.json"),
                    "--no-progress-bar"])
    task, test = _read(tmp_path / "test.tsv", "caption")
    assert len(test) == 2 and _text(task, test[0]["target"]) == "A red square&&a red block"
    assert test[0]["patch_image"].shape == (3, 32, 32)
    assert len(json.loads((tmp_path / "refs.json").read_text())["annotations"]) == 3


def test_vqa_round_trip_with_candidate_answers(images, tmp_path):
    questions = tmp_path / "q.json"
    questions.write_text(json.dumps({"questions": [
        {"question_id": 5, "image_id": 1, "question": "What color is it?"},
        {"question_id": 6, "image_id": 2, "question": "How many squares?"},
        {"question_id": 7, "image_id": 3, "question": "Is it rare?"}]}))
    annotations = tmp_path / "a.json"
    answers = {5: ["Red"] * 8 + ["dark red"] * 2, 6: ["one"] * 3 + ["2"], 7: ["unusual"]}
    annotations.write_text(json.dumps({"annotations": [
        {"question_id": q, "image_id": 0, "answers": [{"answer": a} for a in given]} for q, given in answers.items()]}))
    out = tmp_path / "train.tsv"
    build_tsv.main(["vqa", "--questions", str(questions), "--annotations", str(annotations), "--images", str(images),
                    "--image-pattern", "{image_id:03d}.jpg", "--split", "train", "--out", str(out),
                    "--ans2label-out", str(tmp_path / "ans2label.pkl"), "--min-answer-count", "1",
                    "--no-progress-bar"])
    ans2label = pickle.loads((tmp_path / "ans2label.pkl").read_bytes())
    assert set(ans2label) == {"red", "1", "unusual"}
    task, dataset = _read(out, "vqa_gen", ans2label_file=str(tmp_path / "ans2label.pkl"))
    assert dataset[0]["ref_dict"] == {"red": 1.0}  # "dark red" is not a candidate answer
    assert dataset[1]["ref_dict"] == {"1": 0.9}
    assert _text(task, dataset[1]["source"][1:]).startswith("how many squares?")


def test_refcoco_round_trip(images, tmp_path):
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps([
        {"ref_id": 3, "ann_id": 30, "image_id": 2, "split": "val", "sentences": [{"sent": "left one"}, {"sent": "it"}]},
        {"ref_id": 4, "ann_id": 31, "image_id": 1, "split": "train", "sentences": [{"sent": "other"}]}]))
    instances = tmp_path / "instances.json"
    instances.write_text(json.dumps({"images": [{"id": i, "file_name": f"{i:03d}.jpg"} for i in (1, 2)],
                                     "annotations": [{"id": 30, "bbox": [2, 3, 20, 10]},
                                                     {"id": 31, "bbox": [0, 0, 5, 5]}]}))
    out = tmp_path / "val.tsv"
    build_tsv.main(["refcoco", "--refs", str(refs), "--instances", str(instances), "--images", str(images),
                    "--split", "val", "--out", str(out), "--no-progress-bar"])
    _, dataset = _read(out, "refcoco")
    assert len(dataset) == 2
    assert dataset[0]["region_coord"].tolist() == [2.0, 3.0, 22.0, 13.0] and dataset[0]["id"] == "3_0"

    inspect_row.main([str(out), "1", "--save", str(tmp_path / "row.png")])
    with Image.open(tmp_path / "row.png") as drawn:
        assert drawn.getpixel((2, 3)) == (230, 0, 0)  # the box's corner is drawn


def test_class_folders_and_jsonl_round_trip(images, tmp_path):
    root = tmp_path / "classes"
    for name, i in (("red_thing", 1), ("green_thing", 2)):
        (root / name).mkdir(parents=True)
        (root / name / "a.jpg").write_bytes((images / f"{i:03d}.jpg").read_bytes())
    build_tsv.main(["class-folders", "--root", str(root), "--out", str(tmp_path / "cls.tsv"),
                    "--class2label-out", str(tmp_path / "class2label.pkl"), "--no-progress-bar"])
    _, dataset = _read(tmp_path / "cls.tsv", "image_classify", ans2label_file=str(tmp_path / "class2label.pkl"))
    assert [dataset[i]["ref_dict"] for i in range(2)] == [{"green thing": 1.0}, {"red thing": 1.0}]

    jsonl = images / "snli.jsonl"
    jsonl.write_text("\n".join(json.dumps(item) for item in [
        {"image": "001.jpg", "hypothesis": "it is red", "label": "entailment"},
        {"image": "002.jpg", "hypothesis": "it is red", "premise": "a green box", "label": "contradiction"}]))
    build_tsv.main(["jsonl", "--task", "snli_ve", "--input", str(jsonl), "--out", str(tmp_path / "ve.tsv"),
                    "--no-progress-bar"])
    _, dataset = _read(tmp_path / "ve.tsv", "snli_ve")
    assert [dataset[i]["ref_dict"] for i in range(2)] == [{"yes": 1.0}, {"no": 1.0}]


def test_bad_images_name_the_file_or_are_skipped(images, tmp_path, capsys):
    (images / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    jsonl = tmp_path / "captions.jsonl"
    jsonl.write_text(json.dumps({"image": "bad.jpg", "caption": "x"}) + "\n"
                     + json.dumps({"image": "001.jpg", "caption": ["a", "b"]}) + "\n")
    args = ["jsonl", "--task", "caption", "--input", str(jsonl), "--images", str(images), "--split", "valid",
            "--out", str(tmp_path / "out.tsv"), "--no-progress-bar"]
    with pytest.raises(SystemExit, match=r"bad\.jpg: not a readable image"):
        build_tsv.main(args)
    assert not (tmp_path / "out.tsv").exists()  # no half-written file under the final name
    build_tsv.main(args + ["--skip-bad"])
    captured = capsys.readouterr()
    assert "wrote 1 rows" in captured.out and "skipped 1 unreadable image(s)" in captured.err
    assert (tmp_path / "out.tsv").read_text().split("\t")[2] == "a&&b"
    jsonl.write_text(json.dumps({"image": "001.jpg"}) + "\n")
    with pytest.raises(SystemExit, match=r"captions\.jsonl: line 1: missing 'caption'"):
        build_tsv.main(args)


def test_vqa_answer_normalisation_and_scores():
    assert normalize_answer("Two dogs.") == "2 dogs" and normalize_answer("the  Red") == "red"
    assert answer_scores(["yes", "yes", "yes", "yes", "no"]) == {"yes": 1.0, "no": 0.3}
