"""The image_gen task's generator samples exactly 1024 ``<code_i>`` tokens per image, then decodes them."""
import argparse

import pytest
import torch

from models.text_to_image import TextToImageTools

# the original's --eval-args of the image_gen scripts, with 2 samples per caption instead of 24
EVAL_ARGS = {"beam": 2, "min_len": 1024, "max_len_a": 0, "max_len_b": 1024, "sampling_topk": 256, "temperature": 1.0}


@pytest.mark.slow
def test_sampling_writes_only_1024_image_codes(image_gen_task, small_ofa_model, valid_batch):
    code_image_size, num_codes = 256, 1024  # the original's 256 px images
    task = image_gen_task(code_image_size)
    model = small_ofa_model(task, code_image_size).eval()
    sample = valid_batch(task)
    sample["net_input"] = {k: v[:1] if torch.is_tensor(v) else v for k, v in sample["net_input"].items()}
    generator = task.build_generator([model], argparse.Namespace(**EVAL_ARGS))

    torch.manual_seed(0)
    with torch.no_grad():
        hypotheses = generator.generate([model], sample)[0]
    offset, eos = task.vocab.codes.start, task.vocab.eos
    assert len(hypotheses) == 2
    for hypo in hypotheses:
        tokens = hypo["tokens"]
        assert tokens.numel() == num_codes + 1 and int(tokens[-1]) == eos
        assert ((tokens[:-1] >= offset) & (tokens[:-1] < offset + 8192)).all()
    assert not torch.equal(hypotheses[0]["tokens"], hypotheses[1]["tokens"])  # sampled, not beam-searched

    # the tiny VQGAN is configured for 32 px, but its convolutions decode any square grid of codes: 32x32 -> 256 px
    tools = TextToImageTools.of_task(task)
    images = tools.images_of_hypotheses([hypo["tokens"] for hypo in hypotheses])
    assert [image.size for image in images] == [(code_image_size, code_image_size)] * 2


def test_eval_clip_method_ii_sim_scores_against_the_rows_image(image_gen_task, small_ofa_model, valid_batch):
    """--eval-clip-method ii_sim ranks by similarity to the row's image, not to the caption (ti_sim)."""
    from data.images import decode_base64_image

    code_image_size = 32
    args = argparse.Namespace(beam=2, min_len=16, max_len_a=0, max_len_b=16, sampling_topk=256)
    scores = {}
    for method in ("ti_sim", "ii_sim"):
        task = image_gen_task(code_image_size, eval_clip_method=method)
        model = small_ofa_model(task, code_image_size).eval()
        sample = valid_batch(task)
        TextToImageTools.of_task(task)  # loaded before sampling: building CLIP draws random numbers
        torch.manual_seed(0)
        with torch.no_grad():
            hypotheses = task.build_generator([model], args).generate([model], sample)
            torch.manual_seed(0)
            _, scores[method] = task.eval_step(task.build_generator([model], args), [model], sample)
    tools = TextToImageTools.of_task(task)
    for i, hypos in enumerate(hypotheses):
        images = tools.images_of_hypotheses([hypo["tokens"] for hypo in hypos])
        reference = decode_base64_image(sample["code_images"][i])
        assert scores["ii_sim"][i] == pytest.approx(tools.clip.image_similarity(images, reference).max().item(), abs=1e-5)
    assert scores["ii_sim"] != pytest.approx(scores["ti_sim"])
