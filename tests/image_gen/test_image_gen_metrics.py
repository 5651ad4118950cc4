"""FID (Fréchet distance against closed forms, identical image sets) and Inception Score."""
import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg

from utils.image_gen_metrics import (
    activation_statistics,
    frechet_distance,
    inception_score,
    load_inception,
    load_statistics,
    main,
)


def random_spd(rng, dim):
    a = rng.normal(size=(dim, dim))
    return a @ a.T + dim * np.eye(dim)


def test_frechet_distance_matches_the_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    sigma = random_spd(rng, 5)
    # equal covariances: only the means differ
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(float(np.sum((mu1 - mu2) ** 2)), abs=1e-8)
    # diagonal covariances: sum of (sqrt(a) - sqrt(b))^2 per dimension
    a, b = rng.uniform(0.5, 3, size=5), rng.uniform(0.5, 3, size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)
    # general covariances, against scipy's matrix square root
    s1, s2 = random_spd(rng, 5), random_spd(rng, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    with pytest.raises(ValueError, match="statistics do not match"):
        frechet_distance(mu1, s1, mu2[:4], s2[:4, :4])


def test_fid_of_shifted_gaussian_features():
    gen = torch.Generator().manual_seed(0)
    dim, n, shift, scale = 4, 20000, torch.tensor([1.0, -2.0, 0.5, 0.0]), 2.0
    x = torch.randn(n, dim, generator=gen)
    y = shift + scale * torch.randn(n, dim, generator=gen)
    # N(0, I) vs N(shift, scale^2 I): |shift|^2 + dim * (1 - scale)^2
    expected = float(shift.pow(2).sum()) + dim * (1 - scale) ** 2
    fid = frechet_distance(*activation_statistics(x), *activation_statistics(y))
    assert fid == pytest.approx(expected, rel=0.05)
    assert frechet_distance(*activation_statistics(x), *activation_statistics(x)) == pytest.approx(0.0, abs=1e-8)


def test_inception_score_bounds():
    # confident and spread over k classes: IS = k; identical predictions: IS = 1
    k = 8
    confident = torch.full((k, 1008), -50.0)
    confident[torch.arange(k), torch.arange(k)] = 50.0
    assert inception_score(confident)[0] == pytest.approx(k, rel=1e-6)
    assert inception_score(torch.randn(1, 1008).repeat(6, 1))[0] == pytest.approx(1.0, abs=1e-9)
    mean, std = inception_score(confident.repeat(2, 1), splits=2)
    assert mean == pytest.approx(k, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)


def test_identical_image_sets_have_zero_fid(tmp_path, inception_file):
    images = tmp_path / "generated"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)).save(images / f"caption_{i}.png")
    stats = tmp_path / "stats.npz"
    # one Inception pass (the slow part): IS of the folder, its statistics saved as the original's gt_stat.npz
    result = main(["--path1", str(images), "--inception-weights", str(inception_file), "--batch-size", "2",
                   "--device", "cpu", "--save-stats", str(stats)])
    assert result["num_images"] == 2 and "fid" not in result
    assert 1.0 - 1e-6 <= result["inception_score_mean"] <= 2.0 + 1e-6  # between 1 and the number of images
    mu, sigma = load_statistics(stats)
    assert mu.shape == (2048,) and sigma.shape == (2048, 2048) and np.isfinite(sigma).all() and np.trace(sigma) > 0
    # identical sets with rank-1 covariances: the eigenvalue square roots leave only rounding noise (the leading
    # 256 features: the 2048-dim eigen-decomposition alone takes seconds)
    mu, sigma = mu[:256], sigma[:256, :256]
    assert abs(frechet_distance(mu, sigma, mu, sigma)) <= 1e-4 * np.trace(sigma)


def test_missing_files_are_named(tmp_path, inception_file):
    with pytest.raises(FileNotFoundError, match="Inception weights not found: .*pt_inception.pth"):
        load_inception(tmp_path / "pt_inception.pth")
    torch.save({"fc.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not the FID Inception-v3 weights"):
        load_inception(tmp_path / "other.pth")
    np.savez(tmp_path / "bad.npz", mean=np.zeros(3))
    with pytest.raises(ValueError, match="expected arrays 'mu' and 'sigma'"):
        load_statistics(tmp_path / "bad.npz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .png/.jpg images"):
        main(["--path1", str(tmp_path / "empty"), "--inception-weights", str(inception_file), "--device", "cpu"])
