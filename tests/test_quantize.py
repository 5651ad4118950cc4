"""evaluate.py --quantize int8 on the original's trained caption checkpoint: the captions it writes."""
import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _evaluate(checkpoint: Path, shared: Path, results: Path, *flags: str) -> list[dict]:
    import evaluate

    data = shared / "e2e_caption" / "test.tsv"
    overrides = repr({"data": str(data), "bpe_dir": str(REPO / "utils" / "BPE"), "selected_cols": "0,4,2",
                      "eval_cider": False})
    evaluate.cli_main([
        str(data), f"--path={checkpoint}", f"--user-dir={REPO}", "--task=caption", "--batch-size=2", "--seed=7",
        "--gen-subset=test", f"--results-path={results}", "--beam=5", "--max-len-b=16", "--no-repeat-ngram-size=3",
        "--cpu", "--num-workers=0", f"--model-overrides={overrides}", *flags,
    ])
    return json.loads((results / "test_predict.json").read_text())


def test_int8_captions_of_the_e2e_checkpoint(e2e_caption_checkpoint, shared, tmp_path):
    expected = json.loads((shared / "e2e_caption" / "expected_predict.json").read_text())
    assert _evaluate(e2e_caption_checkpoint, shared, tmp_path, "--quantize=int8") == expected


def test_int8_is_refused_with_bf16(e2e_caption_checkpoint, shared, tmp_path):
    with pytest.raises(SystemExit, match="drop --fp16/--bf16"):
        _evaluate(e2e_caption_checkpoint, shared, tmp_path, "--quantize=int8", "--bf16")


def test_int8_predictor_and_cli_captions(e2e_caption_checkpoint, shared, tmp_path):
    """OFAPredictor(quantize="int8") and predict.py --quantize int8 (serve.py shares its options) on CPU."""
    import predict
    from inference import OFAPredictor, Request
    from test_predict import _image_files

    expected = [p["caption"] for p in json.loads((shared / "e2e_caption" / "expected_predict.json").read_text())]
    images = _image_files((shared / "e2e_caption" / "test.tsv").read_text(), 4, tmp_path / "images")
    predictor = OFAPredictor.from_checkpoint(e2e_caption_checkpoint, quantize="int8", batch_size=4)
    assert predictor.device.type == "cpu"  # the default device with int8, GPU or not
    int8 = [m for m in predictor.models[0].modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert len(int8) == 6 + 10  # one encoder layer: q, k, v, out, fc1, fc2; one decoder layer: + cross-attention
    assert [output["caption"] for output in predictor.predict(map(Request, images))] == expected

    out = tmp_path / "captions.jsonl"
    predict.main(["--path", str(e2e_caption_checkpoint), str(tmp_path / "images"), "--quantize", "int8",
                  "--output", str(out), "--no-progress-bar"])
    assert [json.loads(line)["caption"] for line in out.read_text().splitlines()] == expected
