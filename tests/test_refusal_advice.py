"""A refusal names a flag the refusing command accepts: each advice is run as given and works. And the one-time
warning of an SNLI-VE ``--add-caption`` model asked without a premise."""
import json
import logging
import pickle
import re
import shutil

import pytest
import torch

from test_evaluate import _make_tiny_checkpoint, _tiny_task_files
from test_predict import _image_files

ADVICE = re.compile(r"pass (--[\w-]+) \"(\{'ans2label_file': 'PATH'\})\"")


@pytest.fixture(scope="module")
def moved_answers(e2e_caption_checkpoint, shared, tmp_path_factory):
    """A VQA checkpoint trained with ``--ans2label-file`` whose answer file has moved since: (checkpoint, rows,
    where the answer file is now)."""
    folder = tmp_path_factory.mktemp("moved_answers")
    data, task_cfg = _tiny_task_files(torch.load(shared / "data_parity.pt", weights_only=True), "vqa_gen", folder)
    trained_with = folder / "old" / "ans2label.pkl"
    trained_with.parent.mkdir()
    trained_with.write_bytes(pickle.dumps(json.loads(task_cfg.pop("ans2label_dict"))))
    checkpoint = folder / "vqa.pt"
    _make_tiny_checkpoint(e2e_caption_checkpoint, "vqa_gen", {**task_cfg, "ans2label_file": str(trained_with)},
                          checkpoint)
    now = folder / "ans2label.pkl"
    shutil.move(trained_with, now)
    return checkpoint, data, now


def follow(message: str, moved_to) -> list:
    """The flag and value the refusal advises, with its PATH filled in."""
    match = ADVICE.search(message)
    assert match, message
    return [match.group(1), match.group(2).replace("PATH", str(moved_to))]


def test_convert_to_hf_advises_its_task_overrides(moved_answers, tmp_path, capsys):
    from scripts.convert_checkpoint import main as convert

    checkpoint, _, moved_to = moved_answers
    assert convert(["to-hf", str(checkpoint), str(tmp_path / "hf")]) == 1
    advice = follow(capsys.readouterr().err, moved_to)
    assert advice[0] == "--task-overrides"
    assert convert(["to-hf", str(checkpoint), str(tmp_path / "hf"), *advice]) == 0
    answers = json.loads((tmp_path / "hf" / "answer2label.json").read_text())
    assert sorted(answers) == ["2", "green", "no", "orange", "yes"]


def test_predict_and_evaluate_advise_model_overrides(moved_answers, tmp_path, capsys):
    import evaluate
    import predict

    checkpoint, data, moved_to = moved_answers
    [image] = _image_files(data.read_text(), 5, tmp_path / "images")[:1]
    command = [str(image), "--path", str(checkpoint), "--question", "what color?", "--cpu", "--no-progress-bar"]
    with pytest.raises(SystemExit) as refused:
        predict.main(command)
    advice = follow(str(refused.value.code), moved_to)
    assert advice[0] == "--model-overrides"
    predict.main([*command, *advice])
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["answer"] in {"2", "green", "no", "orange", "yes"}

    command = [str(data), f"--path={checkpoint}", "--task=vqa_gen", "--batch-size=2", "--cpu", "--num-workers=0",
               "--gen-subset=test", f"--results-path={tmp_path / 'results'}", "--no-progress-bar"]
    with pytest.raises(SystemExit) as refused:
        evaluate.cli_main(command)
    evaluate.cli_main([*command, *follow(str(refused.value.code), moved_to)])
    assert len(json.loads((tmp_path / "results" / "test_predict.json").read_text())) == 4


def test_training_names_its_own_flag(moved_answers):
    """train.py sets task options with their own flags: the task's refusal names ``--ans2label-file``."""
    from fairseq import options, tasks

    from tasks.loading import register_ofa_components

    register_ofa_components()
    missing = str(moved_answers[2]) + ".gone"
    args = options.parse_args_and_arch(options.get_training_parser(), [
        str(moved_answers[1]), "--task", "vqa_gen", "--arch", "ofa_tiny", "--ans2label-file", missing])
    with pytest.raises(FileNotFoundError, match=f"^--ans2label-file {re.escape(missing)} does not exist$"):
        tasks.setup_task(args)


def test_snli_ve_with_add_caption_warns_once_without_premise(e2e_caption_checkpoint, shared, tmp_path, caplog):
    from inference import OFAPredictor

    data_parity = torch.load(shared / "data_parity.pt", weights_only=True)
    data, task_cfg = _tiny_task_files(data_parity, "snli_ve", tmp_path)
    assert task_cfg["add_caption"]
    checkpoint = tmp_path / "snli_ve.pt"
    _make_tiny_checkpoint(e2e_caption_checkpoint, "snli_ve", task_cfg, checkpoint)
    images = _image_files(data.read_text(), 2, tmp_path / "images")
    predictor = OFAPredictor.from_checkpoint(checkpoint, batch_size=2)
    with caplog.at_level(logging.WARNING):
        predictor.entail(images[0], "a shape", premise="a picture")
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        for image in images[:3]:
            predictor.entail(image, "a shape")
    warnings = [r.getMessage() for r in caplog.records if "no premise" in r.getMessage()]
    assert len(warnings) == 1 and "--add-caption" in warnings[0], warnings


def test_refcoco_validation_advises_eval_args(shared, tmp_path):
    """A box of other than 4 coordinates at validation names train.py's --eval-args, which then validates."""
    from argparse import Namespace

    from fairseq.tasks import setup_task
    from omegaconf import OmegaConf

    from models.ofa import build_ofa_model

    data, task_cfg = _tiny_task_files(torch.load(shared / "data_parity.pt", weights_only=True), "refcoco", tmp_path)
    task = setup_task(OmegaConf.create({"_name": "refcoco", **task_cfg, "eval_acc": True,
                                        "eval_args": '{"beam":2,"max_len_b":6}'}))
    torch.manual_seed(0)
    model = build_ofa_model("ofa_tiny", dictionary=task.source_dictionary, encoder_layers=1, decoder_layers=1,
                            encoder_embed_dim=32, decoder_embed_dim=32, encoder_ffn_embed_dim=64,
                            decoder_ffn_embed_dim=64, encoder_attention_heads=2, decoder_attention_heads=2,
                            resnet_type="resnet18").eval()
    task.load_dataset("test")
    dataset = task.datasets["test"]
    sample = dataset.collater([dataset[i] for i in range(len(dataset))])
    task.sequence_generator = task.build_generator([model], Namespace(**json.loads(task.cfg.eval_args)))
    with pytest.raises(ValueError, match="coordinate tokens instead of 4") as refused:
        task.valid_metrics(sample, model)
    flag, value = re.search(r"generate with (--[\w-]+) '(.*)'$", str(refused.value)).groups()
    assert flag == "--eval-args"
    task.sequence_generator = task.build_generator([model], Namespace(**json.loads(value)))
    assert task.valid_metrics(sample, model)["_score_cnt"] == 4
