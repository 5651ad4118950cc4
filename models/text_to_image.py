"""Text-to-image helpers: ``<code_i>`` tokens -> VQGAN pixels -> PIL images, CLIP scoring and reranking.

CLIP is OpenAI's ViT-B/16 as the original uses it (``--clip-model-path``, e.g. ``checkpoints/clip/ViT-B-16.pt``),
built by open_clip from a LOCAL file: OpenAI's TorchScript archive or a plain state dict in OpenAI's layout.
Nothing is downloaded.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from models.vqgan import GumbelVQ, load_vqgan

PathLike = Union[str, Path]

# the source prompt of the image_gen task; the CLIP text is the caption after it
CAPTION_PROMPT = " what is the complete image? caption: "
# the original weights CLIP similarities by 2.5 when used as a reward (CLIPScore, Hessel et al. 2021)
CLIP_REWARD_WEIGHT = 2.5


def tokens_to_codes(tokens: Sequence[Tensor], offset: int, num_codes: int, eos: int) -> Tensor:
    """Generated hypotheses (token ids, ``eos`` last) -> VQGAN codes (N, num_codes)."""
    rows = []
    for i, seq in enumerate(tokens):
        seq = seq[:-1] if len(seq) and int(seq[-1]) == eos else seq
        codes = seq.long() - offset
        if codes.numel() != num_codes or (codes.numel() and int(codes.min()) < 0):
            raise ValueError(f"hypothesis {i}: expected {num_codes} <code_i> tokens before eos, got "
                             f"{seq.tolist()[:8]}... ({len(seq)} tokens); generate with gen_code and "
                             f"min_len = max_len_b = {num_codes}")
        rows.append(codes)
    return torch.stack(rows)


def tensor_to_pil(image: Tensor) -> Image.Image:
    """VQGAN output (3, H, W), about [-1, 1] -> RGB PIL image (clamped, truncated to uint8 as the original)."""
    array = ((image.detach().float().clamp(-1.0, 1.0) + 1.0) / 2.0).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray((255 * array).astype(np.uint8)).convert("RGB")


@torch.no_grad()
def codes_to_images(vqgan: GumbelVQ, codes: Tensor, batch_size: int = 8) -> List[Image.Image]:
    """PIL images of VQGAN code sequences (N, side * side), decoded ``batch_size`` at a time."""
    device = next(vqgan.parameters()).device
    images = []
    for chunk in codes.split(batch_size):
        images += [tensor_to_pil(image) for image in vqgan.decode_codes(chunk.to(device))]
    return images


class ClipScorer:
    """Cosine similarity of CLIP image and text embeddings (OpenAI CLIP through open_clip)."""

    def __init__(self, model, preprocess, tokenize):
        self.model, self.preprocess, self.tokenize = model, preprocess, tokenize

    @classmethod
    def from_file(cls, path: PathLike, device: Union[str, torch.device] = "cpu") -> "ClipScorer":
        """CLIP from a local OpenAI checkpoint (TorchScript archive or state dict); eval mode, frozen, fp32."""
        import open_clip

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"CLIP weights not found: {path} (--clip-model-path, e.g. "
                                    "checkpoints/clip/ViT-B-16.pt, OpenAI's ViT-B/16 file)")
        try:
            with warnings.catch_warnings():
                # OpenAI ships a TorchScript archive; open_clip reads its weights through torch.jit.load
                warnings.filterwarnings("ignore", message=".*torch.jit.load.* is deprecated")
                model = open_clip.load_openai_model(str(path), precision="fp32", device=str(device))
        except Exception as e:
            raise ValueError(f"{path}: not an OpenAI CLIP checkpoint ({type(e).__name__}: {e})") from None
        model.requires_grad_(False).eval()
        preprocess = open_clip.image_transform(model.visual.image_size, is_train=False,
                                               mean=open_clip.OPENAI_DATASET_MEAN, std=open_clip.OPENAI_DATASET_STD)
        context_length = model.positional_embedding.size(0)
        return cls(model, preprocess, lambda texts: open_clip.tokenize(texts, context_length=context_length))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device) -> "ClipScorer":
        self.model.to(device)
        return self

    @torch.no_grad()
    def image_features(self, images: Sequence[Image.Image]) -> Tensor:
        pixels = torch.stack([self.preprocess(image) for image in images]).to(self.device)
        return torch.nn.functional.normalize(self.model.encode_image(pixels).float(), dim=-1)

    @torch.no_grad()
    def text_features(self, texts: Sequence[str]) -> Tensor:
        tokens = self.tokenize(list(texts)).to(self.device)
        return torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def text_similarity(self, images: Sequence[Image.Image], texts: Sequence[str]) -> Tensor:
        """Similarity of each image to its caption; images come grouped per caption, the same count for each."""
        if not texts or len(images) % len(texts):
            raise ValueError(f"{len(images)} images cannot be split evenly over {len(texts)} captions")
        image_features = self.image_features(images).view(len(texts), len(images) // len(texts), -1)
        return (image_features @ self.text_features(texts).unsqueeze(-1)).flatten()

    def image_similarity(self, images: Sequence[Image.Image], reference: Image.Image) -> Tensor:
        """Similarity of each image to one reference image (the original's ``ii_sim``)."""
        return (self.image_features(images) @ self.image_features([reference]).T).flatten()


def rank_images(images: Sequence[Image.Image], scores: Tensor, topk: Optional[int] = None
                ) -> Tuple[List[Image.Image], Tensor]:
    """Images sorted by descending score (the best ``topk`` when given), with their scores."""
    sorted_scores, order = torch.sort(scores.flatten().cpu(), descending=True)
    keep = len(images) if topk is None else topk
    return [images[i] for i in order[:keep].tolist()], sorted_scores[:keep]


def save_images(images: Sequence[Image.Image], caption: str, directory: PathLike) -> List[Path]:
    """Save ranked images as ``<directory>/<caption>_<rank>.png`` (the original's names, '/' removed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # most file systems cap a name at 255 bytes
    stem = caption.replace("/", "").encode("utf-8")[:200].decode("utf-8", "ignore")
    paths = []
    for rank, image in enumerate(images):
        paths.append(directory / f"{stem}_{rank}.png")
        image.save(paths[-1])
    return paths


def caption_of_source(task, src_tokens: Tensor) -> str:
    """The caption inside an image_gen source sentence (its prompt and special tokens removed)."""
    dictionary = task.source_dictionary
    tokens = [int(t) for t in src_tokens if int(t) >= dictionary.nspecial]
    text = task.bpe.decode(dictionary.string(torch.tensor(tokens, dtype=torch.long)))
    return text[len(CAPTION_PROMPT):] if text.startswith(CAPTION_PROMPT) else text.strip()


class TextToImageTools:
    """The frozen VQGAN and CLIP of an image_gen task, loaded once from the task's paths."""

    def __init__(self, vqgan: GumbelVQ, clip: ClipScorer, code_offset: int, num_codes: int, eos: int):
        self.vqgan, self.clip = vqgan, clip
        self.code_offset, self.num_codes, self.eos = code_offset, num_codes, eos

    @classmethod
    def of_task(cls, task) -> "TextToImageTools":
        """The task's tools, loaded on first use from ``--vqgan-model-path``, ``--vqgan-config-path``,
        ``--clip-model-path`` and kept on the task (``task.text_to_image_tools``)."""
        tools = getattr(task, "text_to_image_tools", None)
        if tools is None:
            cfg = task.cfg
            missing = [flag for flag, value in (("--vqgan-model-path", cfg.vqgan_model_path),
                                                ("--vqgan-config-path", cfg.vqgan_config_path),
                                                ("--clip-model-path", cfg.clip_model_path)) if not value]
            if missing:
                raise ValueError(f"text-to-image generation needs {', '.join(missing)}")
            tools = cls(load_vqgan(cfg.vqgan_model_path, cfg.vqgan_config_path),
                        ClipScorer.from_file(cfg.clip_model_path), task.vocab.codes.start,
                        (cfg.code_image_size // 8) ** 2, task.target_dictionary.eos())
            task.text_to_image_tools = tools
        return tools

    def to(self, device) -> "TextToImageTools":
        self.vqgan.to(device)
        self.clip.to(device)
        return self

    def images_of_hypotheses(self, tokens: Sequence[Tensor]) -> List[Image.Image]:
        """PIL images of generated ``<code_i>`` hypotheses."""
        return codes_to_images(self.vqgan, tokens_to_codes(tokens, self.code_offset, self.num_codes, self.eos))

    def rerank(self, images: Sequence[Image.Image], caption: str, reference: Optional[Image.Image] = None,
               method: str = "ti_sim") -> Tuple[List[Image.Image], Tensor]:
        """Images of one caption sorted by CLIP similarity to the caption (``ti_sim``) or to the reference
        image (``ii_sim``), best first, with their scores (the task's ``--eval-clip-method``)."""
        if method == "ti_sim":
            scores = self.clip.text_similarity(images, [caption])
        elif method == "ii_sim":
            if reference is None:
                raise ValueError("--eval-clip-method ii_sim needs the reference image (code_images) of the sample")
            scores = self.clip.image_similarity(images, reference)
        else:
            raise ValueError(f"unknown CLIP similarity {method!r} (ti_sim or ii_sim)")
        return rank_images(images, scores)
