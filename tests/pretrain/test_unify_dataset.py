"""UnifyDataset: each pretraining sub-task turns a hand-made row into the original's tokens; mixed batches."""
import random

import pytest
import torch

from data.file_dataset import SkippedRow
from unify_rows import NEGATIVE_CAPTIONS, NEGATIVE_OBJECTS, TYPE2ANS, image_b64, vl_row

BOS, PAD, EOS = 0, 1, 2
# ' what does the image describe?' in OFA's dictionary (fairseq dict.txt order, not raw GPT-2 ids)
CAPTION_PROMPT_IDS = [0, 99, 473, 5, 2274, 6190, 116, 2]
YES, NO = 4420, 117


def decode(task, tokens) -> str:
    return task.bpe.decode(" ".join(task.src_dict[i] for i in tokens.tolist()))


def source_text(task, sample) -> str:
    source = sample["source"]
    assert source[0] == BOS and source[-1] == EOS
    return decode(task, source[1:-1])


def answer_text(task, sample) -> str:
    """The target without eos; prev_output_tokens must be bos + the same tokens."""
    target, prev = sample["target"], sample["prev_output_tokens"]
    assert target[-1] == EOS and prev[0] == BOS and torch.equal(prev[1:], target[:-1])
    return decode(task, target[:-1])


def caption_rows(n, **kwargs):
    return [vl_row(str(i), "caption", caption="a blue square on the left", gt_objects="square", **kwargs)
            for i in range(n)]


def test_caption_and_image_text_matching(make_unify):
    task, ds = make_unify(caption_rows(12))
    seen = set()
    for index in range(12):
        caption, itm = ds[index][0]
        assert caption["source"].tolist() == CAPTION_PROMPT_IDS
        assert answer_text(task, caption) == " a blue square on the left"
        assert caption["patch_image"].shape == (3, 480, 480) and caption["patch_mask"].tolist() == [True]
        assert caption["conf"].tolist() == [1.0]
        matches = itm["target"].tolist() == [YES, EOS]
        assert itm["target"].tolist() in ([YES, EOS], [NO, EOS])
        assert torch.equal(itm["patch_image"], caption["patch_image"])
        if matches:
            assert source_text(task, itm) == ' does the image describe " a blue square on the left "?'
        else:
            negatives = NEGATIVE_CAPTIONS + [f"a blue {o} on the left" for o in NEGATIVE_OBJECTS]
            assert source_text(task, itm) in [f' does the image describe " {c} "?' for c in negatives]
        seen.add(matches)
    assert seen == {True, False}  # both positives and negatives are drawn


def test_caption_cleaning_cc12m_and_valid_split(make_unify):
    rows = [vl_row("1", "caption", caption="  A Red-Circle/ring  on the LEFT!", dataset_name="cc12m")]
    task, ds = make_unify(rows, split="valid")
    (caption,) = ds[0][0]  # no image-text matching outside training
    assert decode(task, caption["prev_output_tokens"][1:]) == " a red circle ring on the left!"
    # cc12m captions: the first two target tokens are padding (not learned)
    target, prev = caption["target"], caption["prev_output_tokens"]
    assert target[:2].tolist() == [PAD, PAD] and torch.equal(target[2:-1], prev[3:]) and target[-1] == EOS
    assert ds[0][1] == []  # no text/image/detection samples outside training


def test_vqa_answer_confidence_and_negative_answer(make_unify):
    rows = [vl_row(str(i), "qa", question="What color is the square?", answer="0.3|!+blue&&0.9|!+red")
            for i in range(12)]
    task, ds = make_unify(rows)
    seen = set()
    for index in range(12):
        vqa, itm = ds[index][0]
        assert source_text(task, vqa) == " what color is the square?"
        assert answer_text(task, vqa) == " red"  # the most confident answer
        assert vqa["conf"].tolist() == pytest.approx([0.9]) and itm["conf"].tolist() == pytest.approx([0.9])
        prompt = ' what is the answer to question " what color is the square? ". is " {} "?'
        if itm["target"].tolist() == [YES, EOS]:
            assert source_text(task, itm) == prompt.format("red")
        else:
            assert itm["target"].tolist() == [NO, EOS]
            negatives = (set(TYPE2ANS["what color"]) | set(TYPE2ANS["other"])) - {"red"}
            assert source_text(task, itm) in {prompt.format(a) for a in negatives}
        seen.add(itm["target"][0].item())
    assert seen == {YES, NO}


def test_negative_answers_follow_the_answer_type(make_unify):
    _, ds = make_unify(caption_rows(1))
    rng = random.Random(0)
    for _ in range(200):
        negative = ds.get_negative_answer("2", 1.0, rng)
        assert negative != "2" and negative in {"1", "3"} | set(TYPE2ANS["other"])
        negative = ds.get_negative_answer("red", 1.0, rng)
        assert negative != "red" and negative in set(TYPE2ANS["what color"]) | set(TYPE2ANS["other"])
        assert ds.get_negative_answer("0", 1.0, rng) in {"1"} | set(TYPE2ANS["other"])
        assert ds.get_negative_answer("unseen", 1.0, rng) in TYPE2ANS["other"][:-1]


def test_visual_grounding_and_grounded_captioning(make_unify):
    # 120x90 image, box (30,20,60,50); patch 480: shorter side -> 480 (640x480, scale 16/3), crop centred on the
    # box clamps to (0, 0); box (160, 106.7, 320, 266.7) / max_image_size 512 * 999 -> bins 312 208 624 520
    rows = [vl_row("7", "visual_grounding", caption="The Blue Square", answer="30,20,60,50")]
    task, ds = make_unify(rows)
    grounding, region = ds[0][0]
    assert source_text(task, grounding) == ' which region does the text " the blue square " describe?'
    bins = ["<bin_312>", "<bin_208>", "<bin_624>", "<bin_520>"]
    assert [task.src_dict[i] for i in grounding["target"][:-1]] == bins
    assert grounding["target"][-1] == EOS and grounding["patch_image"].shape == (3, 480, 480)
    # grounded captioning: the region in the source (note the original's two leading spaces), the text as target
    prompt = task.src_dict.encode_line(task.bpe.encode("  what does the region describe? region:"),
                                       add_if_not_exist=False, append_eos=False).tolist()
    assert prompt[0] == task.src_dict.index(task.bpe.encode(" "))
    assert region["source"].tolist() == [BOS, *prompt, *(task.src_dict.index(b) for b in bins), EOS]
    assert answer_text(task, region) == " the blue square"
    assert region["conf"].tolist() == [1.0]


def test_text_infilling_sample(make_unify):
    text_rows = [["t1", "Hello World, this is OFA."], ["t2", "Second text row."]]
    task, ds = make_unify(caption_rows(8), text_rows=text_rows, mask_ratio=0.0)
    pairs, extras = ds[7]
    assert len(pairs) == 2 and [e["id"] for e in extras] == ["t1", "t2"]
    sample = extras[0]
    assert source_text(task, sample) == ' what is the complete text of " hello world, this is ofa. "?'
    assert answer_text(task, sample) == " hello world, this is ofa."
    assert sample["patch_mask"].tolist() == [False] and sample["code_mask"].tolist() == [False]
    assert sample["conf"].tolist() == [2.0] and sample["patch_image"].abs().sum() == 0
    assert sample["patch_image"].shape == (3, 256, 256)

    task, ds = make_unify(caption_rows(8), text_rows=[["t", " ".join(["word"] * 40)]])
    masked = ds[7][1][0]
    source = decode(task, masked["source"][1:-1])
    assert source.startswith(' what is the complete text of "') and source.endswith(' "?')
    assert "<mask>" in source and masked["source"].tolist().count(task.src_dict.index("<mask>")) >= 1
    assert answer_text(task, masked) == " " + " ".join(["word"] * 40)


def test_text_infilling_keeps_the_last_256_tokens(make_unify):
    text = " ".join(f"w{i}" for i in range(400))
    task, ds = make_unify(caption_rows(8), text_rows=[["t", text]], mask_ratio=0.0)
    sample = ds[7][1][0]
    tokens = task.src_dict.encode_line(task.bpe.encode(" " + text), add_if_not_exist=False, append_eos=False)
    assert torch.equal(sample["target"][:-1], tokens[:512][-256:])


def test_image_infilling_sample(make_unify):
    # code_image_size 16: a 32x32 image whose centre 16x16 is hidden; 4 codes (one per 8x8) as <code_i>
    image_rows = [["img1", image_b64(size=(32, 32), box=(0, 0, 32, 32), color=(255, 255, 255)), "5 0 8191 77"]]
    task, ds = make_unify(caption_rows(8), image_rows=image_rows, code_image_size=16)
    (sample,) = ds[7][1]
    assert sample["id"] == "img1"
    assert source_text(task, sample) == " what is the image in the middle part?"
    assert [task.src_dict[i] for i in sample["target"][:-1]] == ["<code_5>", "<code_0>", "<code_8191>", "<code_77>"]
    assert sample["code_mask"].tolist() == [True] and sample["patch_mask"].tolist() == [True]
    image = sample["patch_image"]
    assert image.shape == (3, 32, 32)
    assert image[:, 8:24, 8:24].abs().sum() == 0  # the hidden centre
    outside = torch.ones(32, 32, dtype=torch.bool)
    outside[8:24, 8:24] = False
    assert torch.allclose(image[:, outside], torch.ones(1))  # white, normalised with mean/std 0.5


def detection_row(uniq_id="det1"):
    return [uniq_id, image_b64(size=(64, 64), box=(8, 8, 24, 40)), "8,8,24,40,3,traffic light&&40.5,10,60,30,1,cat"]


def test_detection_sample(make_unify):
    from data.pretrain_data.augment import LargeScaleJitter

    task, ds = make_unify(caption_rows(8), detection_rows=[detection_row()], code_image_size=32)
    # no flip, jitter scale 1 on a 64 px image (output 2 * 32): boxes / max_image_size 512 -> bins, each
    # followed by its BPE-encoded name
    ds.detection_flip_p = 0.0
    ds.detection_jitter = LargeScaleJitter(output_size=64, aug_scale_min=1.0, aug_scale_max=1.0)
    (sample,) = ds[7][1]
    assert source_text(task, sample) == " what are the objects in the image?"
    expected = ["<bin_16>", "<bin_16>", "<bin_47>", "<bin_78>", *task.bpe.encode(" traffic light").split(),
                "<bin_79>", "<bin_20>", "<bin_117>", "<bin_59>", *task.bpe.encode(" cat").split()]
    assert [task.src_dict[i] for i in sample["target"][:-1]] == expected
    assert sample["code_mask"].tolist() == [False] and sample["conf"].tolist() == [2.0]


def test_detection_augmentation_keeps_the_target_format(make_unify):
    task, ds = make_unify(caption_rows(64), detection_rows=[detection_row(str(i)) for i in range(8)])
    bins = {task.src_dict.index(f"<bin_{i}>") for i in range(1000)}
    names = {tuple(task.src_dict.encode_line(task.bpe.encode(f" {n}"), add_if_not_exist=False,
                                             append_eos=False).tolist()) for n in ("traffic light", "cat")}
    for index in range(7, 64, 8):
        sample = ds[index][1][0]
        assert sample["patch_image"].shape == (3, 256, 256)
        tokens = sample["target"][:-1].tolist()
        objects = 0
        while tokens:
            box, tokens = tokens[:4], tokens[4:]
            assert all(t in bins for t in box)
            # LargeScaleJitter outputs 256 px; / 512 -> coordinates below bin 500
            assert all(int(task.src_dict[t][5:-1]) <= 500 for t in box)
            name = next(n for n in names if tuple(tokens[:len(n)]) == n)
            tokens = tokens[len(name):]
            objects += 1
        assert 1 <= objects <= 2


def test_side_streams_every_eighth_row_continue_across_epochs(make_unify):
    text_rows = [[f"t{i}", f"text number {i}"] for i in range(5)]
    image_rows = [[f"i{i}", image_b64(size=(32, 32)), "1 2 3 4"] for i in range(3)]
    detection_rows = [detection_row(f"d{i}") for i in range(2)]
    task, ds = make_unify(caption_rows(16), text_rows=text_rows, image_rows=image_rows,
                          detection_rows=detection_rows, code_image_size=16)
    assert [len(ds[i][1]) for i in range(16)] == [0] * 7 + [4] + [0] * 7 + [4]
    assert [e["id"] for e in ds[7][1]] == ["t0", "t1", "i0", "d0"]
    assert [e["id"] for e in ds[15][1]] == ["t2", "t3", "i1", "d1"]
    ds.set_epoch(2)  # two groups per epoch: epoch 2 starts with group 2
    assert [e["id"] for e in ds[7][1]] == ["t4", "t0", "i2", "d0"]


def test_samples_are_deterministic_and_leave_global_rngs_alone(make_unify):
    task, ds = make_unify(caption_rows(8), text_rows=[["t", "some text to mask " * 5]])
    random.seed(1)
    torch.manual_seed(1)
    python_state, torch_state = random.getstate(), torch.get_rng_state()
    first = ds[7]
    assert random.getstate() == python_state and torch.equal(torch.get_rng_state(), torch_state)
    second = ds[7]
    for a, b in zip(first[0] + first[1], second[0] + second[1]):
        for key in ("source", "target", "patch_image"):
            assert torch.equal(a[key], b[key])
    ds.set_epoch(2)
    third = ds[7]
    assert not torch.equal(third[0][0]["patch_image"], first[0][0]["patch_image"])  # new epoch, new augmentation


def test_mixed_batch_collates_into_two_views(make_unify):
    text_rows = [[f"t{i}", f"text number {i}"] for i in range(2)]
    task, ds = make_unify(
        [vl_row("c", "caption", caption="a cat"), vl_row("q", "qa", question="what?", answer="1.0|!+red"),
         vl_row("g", "visual_grounding", caption="the cat", answer="30,20,60,50")] * 3,
        text_rows=text_rows, image_rows=[["i", image_b64(size=(32, 32)), "1 2 3 4"]],
        detection_rows=[detection_row()], code_image_size=16, patch_image_size=64)
    pairs, extras = ds.collater([ds[i] for i in range(8)])
    assert pairs["nsentences"] == 16 and extras["nsentences"] == 4
    assert list(pairs["id"]) == [x for x in "ccqqggccqqggccqq"]
    assert pairs["net_input"]["patch_images"].shape == (16, 3, 64, 64)
    assert "code_masks" not in pairs["net_input"] and pairs["conf"].tolist() == [1.0] * 16
    assert extras["net_input"]["patch_images"].shape == (4, 3, 32, 32)
    assert extras["net_input"]["code_masks"].tolist() == [False, False, True, False]
    assert extras["net_input"]["patch_masks"].tolist() == [False, False, True, True]
    assert extras["conf"].tolist() == [2.0] * 4
    for batch in (pairs, extras):
        target, prev = batch["target"], batch["net_input"]["prev_output_tokens"]
        assert target.shape == prev.shape and batch["ntokens"] == int(target.ne(PAD).sum())
        assert batch["net_input"]["src_lengths"].tolist() == batch["net_input"]["src_tokens"].ne(PAD).sum(1).tolist()
    # batches without an 8th row have no second view
    single = ds.collater([ds[i] for i in range(4)])
    assert isinstance(single, dict) and single["nsentences"] == 8
    assert ds.collater([]) == {}


def test_bad_rows_name_file_row_and_column(make_unify):
    from data.file_dataset import RowError

    task, ds = make_unify([vl_row("1", "ocr", caption="x")])
    with pytest.raises(RowError, match=r"vision_language\.tsv: row 0 .*column 7: unknown type 'ocr'"):
        ds[0]
    task, ds = make_unify([vl_row("1", "qa", question="q?", answer="red")])
    with pytest.raises(RowError, match=r"column 4: answer 'red' is not 'confidence\|!\+answer'"):
        ds[0]
    task, ds = make_unify(caption_rows(8), image_rows=[["i", image_b64(size=(40, 32)), "1 2"]], code_image_size=16)
    with pytest.raises(RowError, match=r"image\.tsv: row 0 .*column 1: image infilling needs 32x32 images"):
        ds[7]
    task, ds = make_unify(caption_rows(8), image_rows=[["i", image_b64(size=(32, 32)), "1 9000"]], code_image_size=16)
    with pytest.raises(RowError, match=r"column 2: image codes must be .* \[0, 8192\)"):
        ds[7]
    task, ds = make_unify(caption_rows(8), detection_rows=[["d", image_b64(), "1,2,3,4,cat"]])
    with pytest.raises(RowError, match=r"detection\.tsv: row 0 .*column 2: box '1,2,3,4,cat' is not"):
        ds[7]
    task, ds = make_unify(caption_rows(8), detection_rows=[["d", image_b64(), "1,2,3,4,cat"]], skip_bad_rows=True)
    assert ds[7] == SkippedRow(ds[7].path, 0) and ds[7].path.endswith("detection.tsv") and ds.num_skipped == 1
    batch = ds.collater([ds[6], ds[7]])
    assert batch["nsentences"] == 2 and batch["skipped_rows"] == [ds[7]] and ds.num_skipped == 1


def test_configuration_errors(make_unify, tmp_path):
    with pytest.raises(ValueError, match="--text-selected-cols must pick 2 columns"):
        make_unify(caption_rows(8), text_rows=[["t", "x", "y"]], text_selected_cols="0,1,2")
    with pytest.raises(ValueError, match="--replace-length 2"):
        make_unify(caption_rows(8), replace_length=2)
    with pytest.raises(ValueError, match="--neg-sample-dir is required"):
        make_unify(caption_rows(8), neg_sample_dir=None)
    with pytest.raises(FileNotFoundError, match="all_captions.txt not found"):
        make_unify(caption_rows(8), neg_sample_dir=str(tmp_path))
    _, ds = make_unify(caption_rows(8), split="valid", neg_sample_dir=None)  # validation needs no negatives
    assert len(ds) == 8


def test_sample_patch_num_applies_to_image_text_pairs_only(make_unify):
    """The criterion keeps ``--sample-patch-num`` random patches of the pair view; infilling and detection
    samples keep every patch (their targets need the whole image)."""
    import argparse

    from fairseq.criterions import build_criterion

    import criterions  # noqa: F401  (registers the criterion)
    from models.ofa import build_ofa_model

    task, ds = make_unify(
        [vl_row("c", "caption", caption="a cat"), vl_row("q", "qa", question="what?", answer="1.0|!+red")] * 4,
        text_rows=[["t", "some text"]], image_rows=[["i", image_b64(size=(32, 32)), "1 2 3 4"]],
        detection_rows=[detection_row()], code_image_size=16, patch_image_size=64)
    pairs, extras = batch = ds.collater([ds[i] for i in range(8)])
    torch.manual_seed(0)
    model = build_ofa_model("ofa_tiny", dictionary=task.src_dict, encoder_layers=1, decoder_layers=1,
                            encoder_embed_dim=32, decoder_embed_dim=32, encoder_ffn_embed_dim=64,
                            decoder_ffn_embed_dim=64, encoder_attention_heads=2, decoder_attention_heads=2,
                            resnet_type="resnet18", code_image_size=16)
    calls = []
    encoder_forward = model.encoder.forward

    def recording_forward(*args, **kwargs):
        out = encoder_forward(*args, **kwargs)
        calls.append((kwargs.get("sample_patch_num"), out["encoder_out"][0].shape[0]))
        return out

    model.encoder.forward = recording_forward
    criterion = build_criterion(argparse.Namespace(criterion="adjust_label_smoothed_cross_entropy",
                                                   label_smoothing=0.0, sentence_avg=False, sample_patch_num=2), task)
    loss, sample_size, log = criterion(model.train(), batch)
    assert torch.isfinite(loss) and sample_size == 1 and log["loss_v1"] > 0 and log["loss_v2"] > 0
    # encoder length = text + image patches: 2 of the 4x4 (64 px) pair patches; all 2x2 of the 32 px extras
    assert calls == [(2, pairs["net_input"]["src_tokens"].size(1) + 2),
                     (None, extras["net_input"]["src_tokens"].size(1) + 4)]
