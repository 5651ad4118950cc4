"""OFA-CN and OFA-OCR against the original (cn_ocr_parity.pt): BERT tokens, ids and decoding; Chinese caption,
grounding and OCR batches collated as a user would (task set up with the fixture's options, ``valid`` loaded)."""
import json

import pytest
import torch
from omegaconf import OmegaConf

EXACT = ["src_tokens", "src_lengths", "prev_output_tokens", "patch_masks", "target"]
# our OCR images equal the original's up to float rounding (the _480 entries store fp16)
OCR_IMAGE_TOLERANCE = 1e-3
CLOSE = {"patch_images": 0.1, "w_resize_ratios": 1e-3, "h_resize_ratios": 1e-3, "region_coords": 1e-3}


@pytest.fixture(scope="module")
def cases(shared):
    return torch.load(shared / "cn_ocr_parity.pt", weights_only=False)


def _flat(batch):
    return {**{k: v for k, v in batch.items() if k != "net_input"}, **batch["net_input"]}


def _task(case, path):
    import tasks  # noqa: F401
    from fairseq.tasks import setup_task

    config = json.loads(case["config"])
    config.pop("bpe_dir")  # the fixture's utils/BERT_CN_dict, relative to the original's root: ours is the default
    return setup_task(OmegaConf.create({"_name": config.pop("task"), "data": f"{path},{path}", **config}))


def _batch(task, split):
    task.load_dataset(split)
    dataset = task.datasets[split]
    return dataset, dataset.collater([dataset[i] for i in range(len(dataset))])


def _assert_batch(ours, expected, skip=()):
    ours, expected = _flat(ours), _flat(expected)
    assert ours["nsentences"] == expected["nsentences"] and ours["ntokens"] == expected["ntokens"]
    assert json.dumps(ours["id"].tolist()) == expected["id"]
    for key, value in expected.items():
        if key in skip:
            continue
        if key in EXACT:
            assert ours[key].dtype == value.dtype and torch.equal(ours[key], value), key
        elif key in CLOSE:
            assert ours[key].shape == value.shape, key
            assert (ours[key].float() - value.float()).abs().max() <= CLOSE[key], key


@pytest.fixture(scope="module")
def bert_task(cases, tmp_path_factory):
    """The ocr task of the fixture's ``ocr`` entry (``--bpe bert``)."""
    path = tmp_path_factory.mktemp("cn") / "ocr.tsv"
    path.write_text(cases["ocr"]["tsv"], encoding="utf-8")
    return _task(cases["ocr"], path)


def test_bert_vocabulary_layout(cases, bert_task):
    from data.bert_bpe import OFA_CN_DICTIONARY_SIZE

    expected = cases["bpe"]
    assert len(bert_task.tgt_dict) == expected["dict_size"] == OFA_CN_DICTIONARY_SIZE
    for symbol, index in json.loads(expected["special_ids"]).items():
        assert bert_task.tgt_dict.index(symbol) == index, symbol


def test_bert_tokens_ids_and_decoding(cases, bert_task):
    expected = cases["bpe"]
    bpe, dictionary = bert_task.bpe, bert_task.tgt_dict
    for i, text in enumerate(expected["texts"]):
        tokens = bpe.encode(text)
        assert tokens == expected["bpe_tokens"][i], text
        ids = dictionary.encode_line(tokens, add_if_not_exist=False, append_eos=False).long()
        assert torch.equal(ids, expected["ids"][i]), text
        assert dictionary.string(ids) == expected["dict_strings"][i], text
        assert bpe.decode(expected["dict_strings"][i]) == expected["decoded"][i], text
        assert bert_task.decode_text(ids, "?", {dictionary.eos()}) == expected["ocr_decoded"][i], text


@pytest.mark.parametrize("name", ["caption_cn", "refcoco_cn"])
def test_chinese_batches_match_original(name, cases, tmp_path):
    case = cases[name]
    path = tmp_path / f"{name}.tsv"
    path.write_text(case["tsv"], encoding="utf-8")
    _, batch = _batch(_task(case, path), "valid")
    _assert_batch(batch, case["batch"])


class ReplayRandom:
    """Gives the original's recorded ``random.randint`` results, checking each call's bounds."""

    def __init__(self, draws):
        self.draws = list(draws)

    def randint(self, a, b):
        expected_a, expected_b, result = self.draws.pop(0)
        assert (a, b) == (expected_a, expected_b)
        return result


@pytest.mark.parametrize("name", ["ocr", "ocr_480", "ocr_doc_480"])
def test_ocr_batches_match_original(name, cases, tmp_path):
    case = cases[name]
    path = tmp_path / f"{name}.tsv"
    path.write_text(case["tsv"], encoding="utf-8")
    task = _task(case, path)
    dataset, batch = _batch(task, "valid")
    _assert_batch(batch, case["batch"], skip=["patch_images"])  # images: padding offsets drawn per row, below

    # the images with the original's padding offsets
    draws = json.loads(case["random_randint_draws"])
    images = []
    for i, draw in enumerate(draws):
        rng = ReplayRandom([draw])
        images.append(dataset.ocr_image(dataset.read_image(dataset.dataset[i], 1), rng))
        assert not rng.draws
    images = torch.stack(images)
    if "patch_images" in case["batch"]["net_input"]:
        assert (images - case["batch"]["net_input"]["patch_images"]).abs().max() <= OCR_IMAGE_TOLERANCE
    else:
        assert list(images.shape) == case["patch_images_shape"]
        assert (images[:, :, ::4, ::4] - case["patch_images_sub4"].float()).abs().max() <= OCR_IMAGE_TOLERANCE
        pixels = images.double().flatten(1)
        assert torch.allclose(pixels.sum(1), case["patch_images_sum"], rtol=0, atol=0.1)
        assert torch.allclose(pixels.abs().sum(1), case["patch_images_abs_sum"], rtol=0, atol=0.1)

    strip = {task.tgt_dict.eos()}
    refs = [task.decode_text(t[t.ne(task.tgt_dict.pad())], "?", strip) for t in batch["target"]]
    assert refs == json.loads(case["target_refs"])


def test_ocr_train_batch_equals_valid(cases, tmp_path):
    """No train-time augmentation, and a row's padding offset depends on the row, not the split."""
    case = cases["ocr"]
    assert case["train_equals_valid_same_seed"]
    path = tmp_path / "ocr.tsv"
    path.write_text(case["tsv"], encoding="utf-8")
    task = _task(case, path)
    _, valid = _batch(task, "valid")
    _, train = _batch(task, "train")
    train, valid = _flat(train), _flat(valid)
    for key in ["patch_images", *EXACT]:
        assert torch.equal(train[key], valid[key]), key
