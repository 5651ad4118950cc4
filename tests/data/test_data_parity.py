"""Batches equal the original's collated valid batches of data_parity.pt, task set up as a user would."""
import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

TASKS = ["caption", "refcoco", "vqa_gen", "snli_ve", "gigaword", "mnli", "image_classify"]
EXACT = ["src_tokens", "src_lengths", "prev_output_tokens", "patch_masks", "target", "constraint_masks",
         "prefix_tokens"]
CLOSE = {"patch_images": 0.1, "w_resize_ratios": 1e-3, "h_resize_ratios": 1e-3, "region_coords": 1e-3, "conf": 1e-3}


@pytest.fixture(scope="module")
def fixture_cases(shared):
    return torch.load(shared / "data_parity.pt", weights_only=True)


def _flat(batch):
    return {**{k: v for k, v in batch.items() if k != "net_input"}, **batch["net_input"]}


@pytest.mark.parametrize("name", TASKS)
def test_valid_batch_matches_original(name, fixture_cases, tmp_path):
    import tasks  # noqa: F401
    from fairseq.tasks import setup_task

    case = fixture_cases[name]
    path = tmp_path / f"{name}.tsv"
    path.write_text(case["tsv"], encoding="utf-8")
    task = setup_task(OmegaConf.create({"_name": name, "data": f"{path},{path}", **json.loads(case["config"])}))
    task.load_dataset("valid")
    dataset = task.datasets["valid"]
    ours, expected = _flat(dataset.collater([dataset[i] for i in range(len(dataset))])), _flat(case["batch"])

    assert ours["nsentences"] == expected["nsentences"] and ours["ntokens"] == expected["ntokens"]
    for key, value in expected.items():
        if key in EXACT:
            assert ours[key].dtype == value.dtype and torch.equal(ours[key], value), key
        elif key in CLOSE:
            assert ours[key].shape == value.shape, key
            assert (ours[key].float() - value.float()).abs().max() <= CLOSE[key], key
        elif key in ("ref_dict", "decoder_prompts", "target_strs"):
            assert json.dumps([v.tolist() if isinstance(v, np.ndarray) else v for v in ours[key]]) == value, key
    assert set(k for k in expected if k in EXACT or k in CLOSE) <= set(ours)
