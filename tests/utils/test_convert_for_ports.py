"""to-hf writes what the Hugging Face/ModelScope ports load as it is: tokenizer files, configuration.json; to-fairseq
reads the task back, and predict.py/evaluate.py run the folder or the file without --zero-shot."""
import json

import pytest
import torch

from data.dictionary import VocabLayout, load_ofa_dictionary
from utils.checkpoint_utils import load_checkpoint_to_cpu
from scripts.convert_checkpoint import main as convert


def test_to_hf_writes_tokenizer_and_modelscope_configuration(e2e_caption_checkpoint, shared, tmp_path):
    hf = tmp_path / "hf"
    assert convert(["to-hf", str(e2e_caption_checkpoint), str(hf)]) == 0
    vocab = json.loads((hf / "vocab.json").read_text())
    assert len(vocab) == 50265
    assert [vocab[s] for s in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")] == [0, 1, 2, 3, 50264]
    # the BART ids of a sentence's GPT-2 BPE tokens are our dictionary's ids
    from tasks.ofa_task import OFATask  # noqa: F401  (our BPE)
    from fairseq.data.encoders.gpt2_bpe_utils import get_encoder
    from data.dictionary import BPE_DIR

    encoder = get_encoder(f"{BPE_DIR}/encoder.json", f"{BPE_DIR}/vocab.bpe")
    gpt2_ids = encoder.encode(" a woman holding a yellow umbrella")
    dictionary = load_ofa_dictionary()
    assert [vocab[encoder.decoder[i]] for i in gpt2_ids] == [dictionary.index(str(i)) for i in gpt2_ids]
    assert (hf / "merges.txt").read_text().startswith("#version")

    configuration = json.loads((hf / "configuration.json").read_text())
    assert configuration["task"] == configuration["pipeline"]["type"] == "image-captioning"
    model = configuration["model"]
    assert model["patch_image_size"] == 96  # not the ports' fallback of 480
    assert model["beam_search"] == {"beam_size": 5, "max_len_a": 0, "max_len_b": 16, "min_len": 1,
                                    "no_repeat_ngram_size": 3, "temperature": 1.0, "len_penalty": 1.0,
                                    "normalize_scores": True}  # run_scripts/caption/evaluate_caption.sh
    assert configuration["fairseq_task"]["data"] is None  # not this machine's path

    assert convert(["to-fairseq", str(hf), str(tmp_path / "back.pt")]) == 0
    task = load_checkpoint_to_cpu(str(tmp_path / "back.pt"))["cfg"].task
    assert (task._name, task.patch_image_size, task.max_src_length) == ("caption", 96, 80)

    from inference import OFAPredictor
    from data.images import base64_bytes

    row = (shared / "e2e_caption" / "test.tsv").read_text().splitlines()[2].split("\t")
    expected = json.loads((shared / "e2e_caption" / "expected_predict.json").read_text())[2]["caption"]
    assert OFAPredictor.from_checkpoint(hf).caption(base64_bytes(row[4])) == expected  # the folder, as it is


def test_vqa_answers_travel_in_answer2label(e2e_caption_checkpoint, tmp_path):
    state = torch.load(e2e_caption_checkpoint, weights_only=False)
    answers = {"yes": 0, "no": 1, "red": 2}
    state["cfg"]["task"] = {"_name": "vqa_gen", "patch_image_size": 96, "ans2label_dict": json.dumps(answers),
                            "data": "/elsewhere/train.tsv"}
    torch.save(state, tmp_path / "vqa.pt")
    assert convert(["to-hf", str(tmp_path / "vqa.pt"), str(tmp_path / "hf")]) == 0
    configuration = json.loads((tmp_path / "hf" / "configuration.json").read_text())
    assert configuration["task"] == "visual-question-answering" and configuration["model"]["answer2label"]
    assert json.loads((tmp_path / "hf" / "answer2label.json").read_text()) == answers
    assert configuration["model"]["beam_search"]["normalize_scores"] is False  # evaluate_vqa_beam.sh: --unnormalized
    assert (configuration["model"]["gen_type"], configuration["model"]["prompt_type"]) == ("generation", "none")


def test_modelscope_settings_of_prompted_vqa_and_grounding(e2e_caption_checkpoint, tmp_path, capsys):
    """What ModelScope's pipelines need to decode as we do (tests/utils/test_modelscope_pipeline.py runs them)."""
    state = torch.load(e2e_caption_checkpoint, weights_only=False)
    state["cfg"]["task"] = {"_name": "vqa_gen", "patch_image_size": 96, "ans2label_dict": json.dumps({"yes": 0}),
                            "prompt_type": "prev_output", "add_object": True, "max_src_length": 80}
    torch.save(state, tmp_path / "vqa.pt")
    assert convert(["to-hf", str(tmp_path / "vqa.pt"), str(tmp_path / "vqa")]) == 0
    model = json.loads((tmp_path / "vqa" / "configuration.json").read_text())["model"]
    # its generation mode drops the decoder prompt, its traverse mode (all-candidate scoring) keeps it
    assert (model["gen_type"], model["prompt_type"], model["max_src_length"]) == ("traverse", "prev_output", 80)
    assert "--add-object" in capsys.readouterr().err  # the pipeline has no objects to append

    state["cfg"]["task"] = {"_name": "refcoco", "patch_image_size": 96, "max_image_size": 128}
    torch.save(state, tmp_path / "refcoco.pt")
    assert convert(["to-hf", str(tmp_path / "refcoco.pt"), str(tmp_path / "refcoco")]) == 0
    model = json.loads((tmp_path / "refcoco" / "configuration.json").read_text())["model"]
    bins = VocabLayout.of(load_ofa_dictionary()).bins  # our generator writes only bins there
    assert model["beam_search"]["constraint_range"] == f"{bins.start},{bins.stop}" and model["beam_search"]["gen_box"]
    assert model["max_image_size"] == 128  # the box scale


def test_entangled_positions_are_refused_without_the_flag(e2e_caption_checkpoint, tmp_path, capsys):
    state = torch.load(e2e_caption_checkpoint, weights_only=False)
    state["cfg"]["model"].disable_entangle = False
    torch.save(state, tmp_path / "entangled.pt")
    assert convert(["to-hf", str(tmp_path / "entangled.pt"), str(tmp_path / "hf")]) == 1
    assert "trained without --disable-entangle" in capsys.readouterr().err and not (tmp_path / "hf").exists()
    assert convert(["to-hf", str(tmp_path / "entangled.pt"), str(tmp_path / "hf"), "--allow-position-mismatch"]) == 0


def test_chinese_checkpoints_get_the_bert_vocabulary(e2e_caption_checkpoint, tmp_path):
    state = torch.load(e2e_caption_checkpoint, weights_only=False)
    state["cfg"]["task"] = {**state["cfg"]["task"], "bpe": "bert", "bpe_dir": None}
    torch.save(state, tmp_path / "cn.pt")
    assert convert(["to-hf", str(tmp_path / "cn.pt"), str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "vocab.txt").is_file() and not (tmp_path / "hf" / "vocab.json").exists()
    assert json.loads((tmp_path / "hf" / "configuration.json").read_text())["model"]["language"] == "zh"
