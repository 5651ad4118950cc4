"""A to-hf folder loaded as a ModelScope user loads it: ``pipeline(task, model=FOLDER)`` and
``OFAModel.from_pretrained(FOLDER)``. ModelScope (1.40.2, with transformers 4.40.2) is no dependency of ours:
these tests skip without it; the README's "Hugging Face / ModelScope checkpoints" section says how to install it."""
import json

import pytest

pipelines = pytest.importorskip("modelscope.pipelines")  # first: skipping costs no fairseq import
import torch  # noqa: E402
from modelscope.models.multi_modal.ofa import OFAModel  # noqa: E402
from modelscope.utils.constant import Tasks  # noqa: E402

from scripts.convert_checkpoint import main as convert  # noqa: E402
from test_evaluate import _make_tiny_checkpoint, _tiny_task_files  # noqa: E402
from test_predict import _image_files  # noqa: E402


def test_caption_pipeline_writes_the_originals_captions(e2e_caption_checkpoint, shared, tmp_path):
    """The original train.py's checkpoint, converted: no missing/unexpected tensors, our logits, its captions."""
    from inference import OFAPredictor, Request

    hf = tmp_path / "hf"
    assert convert(["to-hf", str(e2e_caption_checkpoint), str(hf)]) == 0
    theirs, info = OFAModel.from_pretrained(str(hf), output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}

    expected = [p["caption"] for p in json.loads((shared / "e2e_caption" / "expected_predict.json").read_text())]
    images = _image_files((shared / "e2e_caption" / "test.tsv").read_text(), 4, tmp_path / "images")
    captioner = pipelines.pipeline(Tasks.image_captioning, model=str(hf))
    assert [captioner(str(path))["caption"] for path in images] == [[caption] for caption in expected]

    ours = OFAPredictor.from_checkpoint(e2e_caption_checkpoint, device="cpu")
    net_input = ours.sample([Request(path) for path in images])["net_input"]
    with torch.no_grad():
        their_logits = theirs.eval()(input_ids=net_input["src_tokens"], patch_images=net_input["patch_images"],
                                     patch_masks=net_input["patch_masks"],
                                     decoder_input_ids=net_input["prev_output_tokens"]).logits
        our_logits = ours.models[0](**net_input)[0]
    torch.testing.assert_close(their_logits, our_logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("task_name", ["refcoco", "vqa_gen"])
def test_grounding_and_vqa_pipelines_answer_as_we_do(task_name, e2e_caption_checkpoint, shared, tmp_path):
    """Tiny random-weight models: the pipeline reads the image size, box scale, decoder prompt and answer set
    from configuration.json and gives our boxes and answers."""
    from data.dictionary import VocabLayout, load_ofa_dictionary
    from inference import OFAPredictor

    data_parity = torch.load(shared / "data_parity.pt", weights_only=True)
    data, task_cfg = _tiny_task_files(data_parity, task_name, tmp_path)
    if task_name == "refcoco":  # box decoding as the demo trains it: bins only, a 128 px box scale
        bins = VocabLayout.of(load_ofa_dictionary()).bins
        task_cfg.update(constraint_range=f"{bins.start},{bins.stop}", max_image_size=128)
    checkpoint = tmp_path / "checkpoint.pt"
    _make_tiny_checkpoint(e2e_caption_checkpoint, task_name, task_cfg, checkpoint, seed=3)
    hf = tmp_path / "hf"
    assert convert(["to-hf", str(checkpoint), str(hf)]) == 0

    rows = [line.split("\t") for line in data.read_text().splitlines()]
    images = _image_files(data.read_text(), 4 if task_name == "refcoco" else 5, tmp_path / "images")
    # prev_output VQA: ModelScope keeps the decoder prompt only when it scores every answer
    ours = OFAPredictor.from_checkpoint(checkpoint, device="cpu", all_candidates=task_name == "vqa_gen")
    if task_name == "refcoco":
        grounder = pipelines.pipeline(Tasks.visual_grounding, model=str(hf))
        for path, row in zip(images, rows):
            box = grounder({"image": str(path), "text": row[2]})["boxes"][0]
            assert box == pytest.approx(ours.ground(path, row[2]), abs=0.01)
    else:
        answerer = pipelines.pipeline(Tasks.visual_question_answering, model=str(hf))
        answers = [answerer({"image": str(path), "text": row[2]})["labels"] for path, row in zip(images, rows)]
        assert answers == [ours.answer(path, row[2]) for path, row in zip(images, rows)]
