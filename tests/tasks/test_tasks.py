"""Every registered task turns its TSV row into the tokens, bins and masks the original would produce."""
import base64
import pickle
from io import BytesIO

import pytest
import torch
from PIL import Image, ImageDraw

from data.file_dataset import RowError

BOS, PAD, EOS = 0, 1, 2
YES, NO, MAYBE, POSITIVE, NEGATIVE = 4420, 117, 2085, 1313, 2430
CODE_0, BIN_0, VOCAB = 50265, 58457, 59457
TASKS = ["caption", "vqa_gen", "refcoco", "snli_ve", "image_classify", "gigaword", "cola", "mnli", "mrpc", "qnli",
         "qqp", "rte", "sst2", "image_gen"]


def encode(task, text):
    """Reference encoding of a prompt: the GPT-2 BPE of the exact string, mapped through the dictionary."""
    return task.src_dict.encode_line(task.bpe.encode(text), add_if_not_exist=False, append_eos=False).tolist()


def test_all_tasks_registered_with_original_flags():
    import tasks  # noqa: F401
    from fairseq import options
    from fairseq.tasks import TASK_REGISTRY

    assert all(name in TASK_REGISTRY for name in TASKS)
    parser = options.get_generation_parser(default_task="vqa_gen")
    args = options.parse_args_and_arch(parser, [
        "train.tsv,valid.tsv", "--task", "vqa_gen", "--selected-cols", "0,5,2,3,4", "--bpe-dir", "utils/BPE",
        "--max-src-length", "80", "--patch-image-size", "480", "--prompt-type", "prev_output", "--add-object",
        "--val-inference-type", "beamsearch", "--ans2label-file", "a.pkl", "--uses-ema", "--unconstrained-training",
        "--imagenet-default-mean-and-std", "--constraint-range", "4,50265", "--eval-args", '{"beam":5}',
    ])
    assert (args.data, args.prompt_type, args.add_object, args.uses_ema, args.constraint_range) == \
        ("train.tsv,valid.tsv", "prev_output", True, True, "4,50265")


GLUE_CASES = [
    ("cola", ["The book was read ."], "1", ' is the text " the book was read . " grammatically correct?', YES),
    ("mnli", ["A cat sat.", "A cat is here."], "0", ' can text1 " a cat sat. " imply text2 " a cat is here. "?', MAYBE),
    ("mrpc", ["He ran.", "He jogged."], "0", ' does text1 " he ran. " and text2 " he jogged. " have the same semantics?',
     NO),
    ("qnli", ["Who ran?", "Bob ran fast."], "entailment",
     ' does " bob ran fast. " contain the answer to question " who ran? "?', YES),
    ("qqp", ["Is it red?", "Is it  RED?"], "1", ' is question " is it red? " and question " is it red? " equivalent?',
     YES),
    ("rte", ["Rain fell.", "It is dry."], "not_entailment", ' can text1 " rain fell. " imply text2 " it is dry. "?', NO),
    ("sst2", ["A great   movie"], "1", ' is the sentiment of text " a great movie " positive or negative?', POSITIVE),
]


@pytest.mark.parametrize("name,sentences,label,prompt,answer", GLUE_CASES)
@pytest.mark.parametrize("prompt_type", ["none", "src", "prev_output"])
def test_glue_rows(make_task, name, sentences, label, prompt, answer, prompt_type):
    cols = ",".join(map(str, range(len(sentences) + 1)))
    task, dataset = make_task(name, [sentences + [label]], selected_cols=cols, prompt_type=prompt_type)
    sample = dataset[0]
    source = [BOS] + encode(task, prompt) + [EOS]
    assert sample["source"].tolist() == source
    prompt_tokens = {"none": [BOS], "src": source, "prev_output": source[:-1]}[prompt_type]
    assert sample["prev_output_tokens"].tolist() == prompt_tokens
    assert sample["target"].tolist() == [PAD] * (len(prompt_tokens) - 1) + [answer]
    assert sample["ref_dict"] == {task.index2ans[[encode(task, " " + a)[0] for a in task.index2ans.values()].index(
        answer)]: 1.0}
    allowed = torch.nonzero(sample["constraint_mask"][-1]).flatten().tolist()
    assert sorted(allowed) == sorted(item.item() for item in task.answer_items)
    assert not sample["constraint_mask"][:-1].any()
    batch = dataset.collater([sample, sample])
    assert batch["target"].shape == (2, len(prompt_tokens)) and "decoder_prompts" not in batch


def _png(size=(100, 50), box=None):
    """Black PNG; with ``box`` a white object whose left edge is marked red (to tell if it was flipped)."""
    image = Image.new("RGB", size)
    if box:
        draw = ImageDraw.Draw(image)
        draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=(255, 255, 255))
        draw.rectangle([box[0], box[1], box[0] + 5, box[3] - 1], fill=(255, 0, 0))
    buffer = BytesIO()
    image.save(buffer, format="PNG")
    return base64.urlsafe_b64encode(buffer.getvalue()).decode()


def test_refcoco_box_to_bins(make_task):
    task, dataset = make_task("refcoco", [[7, 0, "The LEFT  dog", "10,5,60,45", _png()]], selected_cols="0,4,2,3",
                              patch_image_size=96)
    sample = dataset[0]
    # 100x50 -> 96x96: ratios 0.96, 1.92; box (9.6, 9.6, 57.6, 86.4) / 512 * 999, rounded
    assert sample["target"].tolist() == [BIN_0 + 19, BIN_0 + 19, BIN_0 + 112, BIN_0 + 169, EOS]
    assert sample["prev_output_tokens"].tolist() == [BOS] + sample["target"].tolist()[:-1]
    assert sample["source"].tolist() == [BOS] + encode(task, ' which region does the text " the left dog " describe?') \
        + [EOS]
    batch = dataset.collater([sample])
    assert batch["w_resize_ratios"].tolist() == pytest.approx([0.96]) and batch["h_resize_ratios"].tolist() == \
        pytest.approx([1.92])
    assert batch["region_coords"].tolist() == [[10.0, 5.0, 60.0, 45.0]]


@pytest.mark.parametrize("seed", range(4))
def test_refcoco_train_augment_keeps_box_on_object(make_task, seed):
    torch.manual_seed(seed)
    import random
    random.seed(seed)
    box = (30, 10, 80, 40)
    _, dataset = make_task("refcoco", [[1, 0, "left box", ",".join(map(str, box)), _png((120, 60), box)]],
                           split="train", selected_cols="0,4,2,3", patch_image_size=64, max_image_size=64,
                           train_box_augment=True)
    sample = dataset[0]
    bins = [t - BIN_0 for t in sample["target"].tolist()[:-1]]
    predicted = [b / 999 * 64 for b in bins]
    pixels = sample["patch_image"]
    ys, xs = torch.nonzero(pixels[0] > 0.2, as_tuple=True)  # white or red: the object
    white = [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
    assert all(abs(p - w) <= 2.0 for p, w in zip(predicted, white)), (predicted, white)
    red_x = torch.nonzero((pixels[0] > 0.5) & (pixels[1] < -0.5), as_tuple=True)[1].float().mean()
    flipped = red_x > (white[0] + white[2]) / 2
    text = dataset.tgt_dict.string(sample["source"][1:-1])
    assert dataset.bpe.decode(text).endswith(('right box " describe?' if flipped else 'left box " describe?'))


def test_caption_train_strips_punctuation_and_truncates(make_task):
    task, dataset = make_task("caption", [[5, 0, "A dog, running; FAST in the park!", "", _png()]],
                              split="train", selected_cols="0,4,2", max_tgt_length=4, patch_image_size=32)
    sample = dataset[0]
    tgt = encode(task, " A dog running FAST")
    assert sample["target"].tolist() == tgt + [EOS] and sample["prev_output_tokens"].tolist() == [BOS] + tgt
    assert sample["source"].tolist() == [BOS] + encode(task, " what does the image describe?") + [EOS]
    assert sample["patch_image"].shape == (3, 32, 32) and sample["id"] == "5"


@pytest.mark.parametrize("prompt_type", ["none", "src"])
def test_vqa_prompt_types_objects_and_candidates(make_task, tmp_path, prompt_type):
    ans2label = tmp_path / "ans2label.pkl"
    ans2label.write_bytes(pickle.dumps({"yes": 0, "no": 1, "red car": 2}))
    task, dataset = make_task(
        "vqa_gen", [[3, 0, "Is   it-red", "0.4|!+yes&&0.9|!+red car", "car&&tree", _png()]],
        selected_cols="0,5,2,3,4", prompt_type=prompt_type, add_object=True, ans2label_file=str(ans2label),
        patch_image_size=32)
    sample = dataset[0]
    source = [BOS] + encode(task, " is it red?") + encode(task, " object: car tree") + [EOS]
    answer = encode(task, " red car")
    assert sample["source"].tolist() == source
    prompt = [BOS] if prompt_type == "none" else source
    assert sample["prev_output_tokens"].tolist() == prompt + answer
    assert sample["target"].tolist() == [PAD] * (len(prompt) - 1) + answer + [EOS]
    assert sample["conf"].tolist() == [pytest.approx(0.9)]
    mask = sample["constraint_mask"]
    first = len(prompt) - 1
    assert set(torch.nonzero(mask[first]).flatten().tolist()) == {YES, NO, answer[0]}
    assert torch.nonzero(mask[first + 1]).flatten().tolist() == [answer[1]]
    assert torch.nonzero(mask[first + 2]).flatten().tolist() == [EOS] and not mask[:first].any()
    batch = dataset.collater([sample])
    assert batch["prefix_tokens"].tolist() == [prompt[1:]] and batch["decoder_prompts"][0] == prompt
    assert len(task.answer_items) == 3 and answer in [a.tolist() for a in task.answer_items]
    # the candidate "red car" is scored under the same trie masks as the training target
    assert torch.equal(task.constraint_trie.answer_masks(answer + [EOS], VOCAB, BOS), mask[first:])


def test_vqa_unconstrained_has_no_masks(make_task):
    _, dataset = make_task("vqa_gen", [[3, 0, "what?", "1.0|!+anything goes", "", _png()]],
                           selected_cols="0,5,2,3,4", unconstrained_training=True, val_inference_type="beamsearch",
                           patch_image_size=32)
    assert "constraint_masks" not in dataset.collater([dataset[0]])
    with pytest.raises(RowError, match="column 3: answer 'oops' is not 'confidence"):
        make_task("vqa_gen", [[3, 0, "what?", "oops", "", _png()]], selected_cols="0,5,2,3,4",
                  unconstrained_training=True, val_inference_type="beamsearch")[1][0]


def test_snli_ve_without_premise(make_task):
    task, dataset = make_task("snli_ve", [[1, 0, _png(), "Two DOGS run", "premise", "contradiction"]],
                              selected_cols="0,2,3,4,5", patch_image_size=32)
    sample = dataset[0]
    assert sample["source"].tolist() == [BOS] + encode(task, ' does the image describe " two dogs run "?') + [EOS]
    assert sample["target"].tolist() == [NO, EOS] and sample["ref_dict"] == {"no": 1.0}


def test_image_gen_codes(make_task):
    codes = [i % 8192 for i in range(0, 1024 * 7, 7)]
    task, dataset = make_task("image_gen", [[9, " ".join(map(str, codes)), "a red car"]], selected_cols="0,2,1")
    sample = dataset[0]
    assert sample["source"].tolist() == [BOS] + encode(task, " what is the complete image? caption: a red car") \
        + [EOS]
    assert task.src_dict[CODE_0 + 7] == "<code_7>"
    assert sample["target"].tolist() == [CODE_0 + c for c in codes] + [EOS]
    assert sample["prev_output_tokens"].tolist() == [BOS] + [CODE_0 + c for c in codes]
    batch = dataset.collater([sample])
    assert batch["net_input"]["code_masks"].tolist() == [True] and "patch_images" not in batch["net_input"]
    reference = Image.open(BytesIO(base64.urlsafe_b64decode(batch["code_images"][0])))
    assert reference.size == (256, 256) and reference.getextrema() == ((0, 0),) * 3
    _, bad = make_task("image_gen", [[9, "1 2 3", "a car"]], selected_cols="0,2,1")
    with pytest.raises(RowError, match="column 1: image code must be 1024 integers"):
        bad[0]


def test_gigaword_noise_only_touches_decoder_input(make_task):
    torch.manual_seed(0)
    task, dataset = make_task("gigaword", [["Police <unk> arrested a man", "Man  ARRESTED by police"]],
                              split="train", selected_cols="0,1", noise_ratio=1.0)
    sample = dataset[0]
    tgt = encode(task, "man arrested by police")  # no leading space, as the original
    assert sample["target"].tolist() == tgt + [EOS] and sample["target_str"] == "man  arrested by police"
    assert sample["source"].tolist() == [BOS] + encode(
        task, ' what is the summary of article " police unk arrested a man "?') + [EOS]
    noisy = sample["prev_output_tokens"].tolist()[1:]
    assert noisy != tgt and all(4 <= t < CODE_0 for t in noisy)


def test_image_classify_train_augmentation(make_task):
    _, dataset = make_task("image_classify", [[_png(), "x", "tench"]], split="train", selected_cols="0,2",
                           ans2label_dict={"tench": 0, "goldfish": 1}, patch_image_size=32)
    sample = dataset[0]
    assert sample["patch_image"].shape == (3, 32, 32) and sample["ref_dict"] == {"tench": 1.0}


def test_epoch_k_trains_on_file_k(make_task, write_tsv):
    task, _ = make_task("caption", [[1, 0, "a", "", _png()]], selected_cols="0,4,2")
    task.cfg.data = "a.tsv,b.tsv,valid.tsv"
    assert [task.data_path("train", e) for e in (1, 2, 3)] == ["a.tsv", "b.tsv", "a.tsv"]
    assert task.data_path("valid") == "valid.tsv"
    task.cfg.data = "only.tsv"
    with pytest.raises(ValueError, match="training needs train file"):
        task.data_path("train")


def test_the_front_doors_ask_the_task_classes():
    """predict.py, dataset/build_tsv.py and the converter list no tasks of their own: the task classes say."""
    import tasks  # noqa: F401
    from fairseq.tasks import TASK_REGISTRY

    from dataset.builders import annotation_tasks, selected_cols
    from tasks.loading import prediction_tasks

    assert prediction_tasks() == ["caption", "image_classify", "ocr", "refcoco", "snli_ve", "vqa_gen"]
    assert annotation_tasks() == ["caption", "image_classify", "refcoco", "snli_ve", "vqa_gen"]
    assert [selected_cols(name) for name in annotation_tasks()] == ["0,4,2", "0,2", "0,4,2,3", "0,2,3,4,5",
                                                                    "0,5,2,3,4"]
    modelscope = {name: cls.modelscope_pipeline[0] for name, cls in TASK_REGISTRY.items()
                  if getattr(cls, "modelscope_pipeline", None)}
    assert modelscope == {"caption": "image-captioning", "refcoco": "visual-grounding",
                          "vqa_gen": "visual-question-answering", "snli_ve": "visual-entailment",
                          "image_classify": "image-classification"}
