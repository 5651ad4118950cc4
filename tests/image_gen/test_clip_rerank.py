"""CLIP from a local file, text-image similarity, top-k reranking and the saved PNGs."""
import pytest
import torch
from PIL import Image

from models.text_to_image import ClipScorer, rank_images, save_images


@pytest.fixture(scope="module")
def scorer(clip_file):
    return ClipScorer.from_file(clip_file)


def solid_images():
    colors = [(250, 10, 10), (10, 250, 10), (10, 10, 250), (240, 240, 240), (5, 5, 5), (128, 64, 200)]
    return [Image.new("RGB", (40, 40), color) for color in colors]


def test_loads_offline_from_the_file_in_eval_mode(scorer):
    assert not scorer.model.training and not any(p.requires_grad for p in scorer.model.parameters())
    assert next(scorer.model.parameters()).dtype == torch.float32


def test_missing_or_wrong_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="CLIP weights not found: .*ViT-B-16.pt"):
        ClipScorer.from_file(tmp_path / "ViT-B-16.pt")
    torch.save({"not": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt: not an OpenAI CLIP checkpoint"):
        ClipScorer.from_file(tmp_path / "bad.pt")


def test_text_similarity_is_the_cosine_of_clip_embeddings(scorer):
    images, captions = solid_images(), ["a red square", "a dark night"]
    scores = scorer.text_similarity(images, captions)
    assert scores.shape == (6,)
    with torch.no_grad():
        pixels = torch.stack([scorer.preprocess(image) for image in images])
        image_features = scorer.model.encode_image(pixels)
        text_features = scorer.model.encode_text(scorer.tokenize(captions))
    expected = torch.nn.functional.cosine_similarity(image_features, text_features.repeat_interleave(3, dim=0))
    assert torch.allclose(scores, expected, atol=1e-5)
    with pytest.raises(ValueError, match="split evenly"):
        scorer.text_similarity(images[:5], captions)


def test_reranking_keeps_the_top_k_by_score_and_saves_them(scorer, tmp_path):
    images = solid_images()
    scores = scorer.text_similarity(images, ["a green field"])
    top, top_scores = rank_images(images, scores, topk=3)
    order = sorted(range(6), key=lambda i: -float(scores[i]))
    assert [images.index(image) for image in top] == order[:3]
    assert top_scores.tolist() == sorted(scores.tolist(), reverse=True)[:3]

    paths = save_images(top, "a green/field", tmp_path / "top3")
    assert [p.name for p in paths] == ["a greenfield_0.png", "a greenfield_1.png", "a greenfield_2.png"]
    assert Image.open(paths[0]).getpixel((0, 0)) == top[0].getpixel((0, 0))


def test_an_image_is_most_similar_to_itself(scorer):
    images = solid_images()
    similarity = scorer.image_similarity(images, images[2])
    assert int(similarity.argmax()) == 2 and similarity[2].item() == pytest.approx(1.0, abs=1e-5)


def test_task_reranking_by_caption_or_reference_image(scorer, vqgan_files):
    from models.vqgan import load_vqgan
    from models.text_to_image import TextToImageTools

    tools = TextToImageTools(load_vqgan(*vqgan_files), scorer, code_offset=50265, num_codes=16, eos=2)
    images = solid_images()
    ranked, scores = tools.rerank(images, "a blue sky")
    expected, expected_scores = rank_images(images, scorer.text_similarity(images, ["a blue sky"]))
    assert ranked == expected and torch.equal(scores, expected_scores)
    ranked, scores = tools.rerank(images, "a blue sky", reference=images[4], method="ii_sim")
    assert ranked[0] is images[4] and scores[0].item() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="needs the reference image"):
        tools.rerank(images, "a blue sky", method="ii_sim")
