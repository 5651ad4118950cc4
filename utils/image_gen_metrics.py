"""FID and Inception Score of generated images (torch-fidelity's Inception-v3 and formulas, weights from a local file).

Usage (the original's ``fid_score.py`` / ``inception_score.py`` in one entry point)::

    python -m utils.image_gen_metrics --path1 results/image_gen/top1 --path2 gt_stat.npz \\
        --inception-weights checkpoints/inception/pt_inception-2015-12-05-6726825d.pth

``--path2`` is a folder of reference images or an ``.npz`` with ``mu`` and ``sigma`` (the original's
``gt_stat.npz``). The weights are the FID Inception (TensorFlow's 2015-12-05 graph converted to PyTorch, the file
pytorch-fid and torch-fidelity download as ``pt_inception-2015-12-05-6726825d.pth`` /
``weights-inception-2015-12-05-6726825d.pth``); nothing is downloaded here.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
INCEPTION_SIZE = 299
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def load_inception(weights_path: PathLike, device: Union[str, torch.device] = "cpu"):
    """torch-fidelity's FID Inception-v3 returning pool features (2048) and unbiased logits (1008)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise FileNotFoundError(
            f"Inception weights not found: {weights_path} (--inception-weights: the FID Inception-v3 state dict, "
            "pt_inception-2015-12-05-6726825d.pth; this tool never downloads it)")
    try:  # validate safely before torch-fidelity loads the file (it does so without weights_only)
        torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{weights_path}: not a PyTorch state dict ({type(e).__name__}: {e})") from None
    try:
        extractor = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                                feature_extractor_weights_path=str(weights_path))
    except RuntimeError as e:
        raise ValueError(f"{weights_path}: not the FID Inception-v3 weights ({e})") from None
    return extractor.to(device)


def image_files(directory: PathLike) -> List[Path]:
    """PNG/JPEG files under ``directory`` (recursively, sorted)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image folder not found: {directory}")
    files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"no .png/.jpg images under {directory}")
    return files


def _to_uint8(image: Union[Image.Image, PathLike]) -> torch.Tensor:
    if not isinstance(image, Image.Image):
        image = Image.open(image)
    # the original resizes to 299x299 with PIL (bilinear) before the network
    image = image.convert("RGB").resize((INCEPTION_SIZE, INCEPTION_SIZE), Image.BILINEAR)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


@torch.no_grad()
def inception_features(images: Sequence[Union[Image.Image, PathLike]], extractor, batch_size: int = 50
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pool features (N, 2048) and unbiased logits (N, 1008) of PIL images or image files."""
    device = next(extractor.parameters()).device
    pools, logits = [], []
    for start in range(0, len(images), batch_size):
        batch = torch.stack([_to_uint8(image) for image in images[start:start + batch_size]]).to(device)
        pool, logit = extractor(batch)
        pools.append(pool.cpu())
        logits.append(logit.cpu())
    return torch.cat(pools), torch.cat(logits)


def activation_statistics(features: torch.Tensor) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of features (N, D)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    if features.dim() != 2 or features.size(0) < 2:
        raise ValueError(f"need features of shape (N >= 2, D), got {tuple(features.shape)}")
    stats = fid_features_to_statistics(features.double())
    return stats["mu"].astype(np.float64), stats["sigma"].astype(np.float64)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)), the Fréchet distance of two Gaussians."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    result = fid_statistics_to_metric({"mu": mu1, "sigma": sigma1}, {"mu": mu2, "sigma": sigma2}, verbose=False)
    return result[KEY_METRIC_FID]


def inception_score(logits: torch.Tensor, splits: int = 1) -> Tuple[float, float]:
    """Mean and std over ``splits`` of exp(E KL(p(y|x) || p(y))), from classifier logits (N, classes)."""
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    if logits.dim() != 2 or logits.size(0) < splits:
        raise ValueError(f"need logits of shape (N >= splits={splits}, classes), got {tuple(logits.shape)}")
    result = isc_features_to_metric(logits, splits=splits, shuffle=False)
    return result[KEY_METRIC_ISC_MEAN], result[KEY_METRIC_ISC_STD]


def load_statistics(path: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """``mu`` and ``sigma`` of a reference statistics ``.npz`` (the original's ``gt_stat.npz``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference statistics not found: {path}")
    with np.load(path, allow_pickle=False) as stats:
        if not {"mu", "sigma"} <= set(stats.files):
            raise ValueError(f"{path}: expected arrays 'mu' and 'sigma', found {stats.files}")
        return stats["mu"], stats["sigma"]


def reference_statistics(path: PathLike, extractor, batch_size: int) -> Tuple[np.ndarray, np.ndarray]:
    if str(path).endswith(".npz"):
        return load_statistics(path)
    return activation_statistics(inception_features(image_files(path), extractor, batch_size)[0])


def evaluate_image_folder(path1: PathLike, path2: PathLike | None, weights: PathLike, batch_size: int = 50,
                          splits: int = 1, device: str = "cpu", save_stats: PathLike | None = None) -> Dict[str, float]:
    """IS of the images under ``path1`` and, with ``path2``, their FID against it."""
    extractor = load_inception(weights, device)
    files = image_files(path1)
    pool, logits = inception_features(files, extractor, batch_size)
    mean, std = inception_score(logits, splits)
    result = {"num_images": len(files), "inception_score_mean": mean, "inception_score_std": std}
    mu, sigma = activation_statistics(pool)
    if save_stats:
        np.savez(save_stats, mu=mu, sigma=sigma)
    if path2:
        result["fid"] = frechet_distance(mu, sigma, *reference_statistics(path2, extractor, batch_size))
    return result


def main(argv: Sequence[str] | None = None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path1", required=True, help="folder of generated images (e.g. <gen_images_path>/top1)")
    parser.add_argument("--path2", default=None, help="reference images folder or statistics .npz (mu, sigma); "
                                                       "omit for the Inception Score only")
    parser.add_argument("--inception-weights", required=True, help="local FID Inception-v3 weights file")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--splits", type=int, default=1, help="Inception Score splits (the original uses 1)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--save-stats", default=None, help="write the mu/sigma of --path1 to this .npz")
    args = parser.parse_args(argv)
    result = evaluate_image_folder(args.path1, args.path2, args.inception_weights, args.batch_size, args.splits,
                                   args.device, args.save_stats)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
