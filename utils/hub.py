"""The original's released checkpoints by name: ``--path ofa:caption_large_best_clean``, ``--restore-file ofa:ofa_tiny``
(predict.py, serve.py, evaluate.py, train.py, the demo).

A name is the file stem the original's checkpoints.md links to. The first use downloads the file into
``$OFA_HOME/checkpoints`` (default ``~/.cache/ofa``) with a progress bar: into ``<file>.part``, resumed with an
HTTP Range request after an interruption (also by a later run), checked (the Content-Length size and the CRC of
every member of the torch zip archive), then renamed into place, so the cache never holds a partial file.
``OFA_HUB_URL`` replaces the download host (a mirror, or a local server in the tests).
"""
from __future__ import annotations

import difflib
import fcntl
import http.client
import logging
import os
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

logger = logging.getLogger(__name__)

PREFIX = "ofa:"
DEFAULT_URL = "https://ofa-beijing.oss-cn-beijing.aliyuncs.com/checkpoints/"
RETRIES = 3  # reconnections (each resuming where the last stopped) before giving up on a download
CHUNK = 1 << 20

#: name -> what it is, as the original's checkpoints.md lists them (the file is ``<name>.pt``)
CHECKPOINTS: dict[str, str] = {
    "ofa_tiny": "pretrained OFA-Tiny (~33M parameters)",
    "ofa_medium": "pretrained OFA-Medium (~93M)",
    "ofa_base": "pretrained OFA-Base (~180M)",
    "ofa_large": "pretrained OFA-Large (~470M)",
    "ofa_huge": "pretrained OFA-Huge (~930M)",
    "caption_huge_best": "caption (COCO), huge",
    "caption_large_best_clean": "caption (COCO), large",
    "caption_stage1_best": "caption (COCO) after stage-1 finetuning, large",
    "caption_base_best": "caption (COCO), base",
    "vqa_huge_best": "VQAv2, huge",
    "vqa_large_best": "VQAv2, large",
    "vqa_base_best": "VQAv2, base",
    "refcoco_large_best": "RefCOCO, large",
    "refcocoplus_large_best": "RefCOCO+, large",
    "refcocog_large_best": "RefCOCOg, large",
    "refcoco_base_best": "RefCOCO, base",
    "refcocoplus_base_best": "RefCOCO+, base",
    "refcocog_base_best": "RefCOCOg, base",
    "snli_ve_large_best": "SNLI-VE, large",
    "snli_ve_base_best": "SNLI-VE, base",
    "imagenet_1k_large_best": "ImageNet-1K, large",
    "gigaword_large_best": "Gigaword, large",
    "image_gen_base_best": "text-to-image (COCO), base",
    "ofa_tiny_plaintext": "text-only language model, tiny",
    "ofa_medium_plaintext": "text-only language model, medium",
    "ofa_huge_plaintext": "text-only language model, huge",
    "bart_base": "BART-base language model",
    "bart_large": "BART-large language model",
}


class HubError(OSError):
    """A released checkpoint that cannot be named, downloaded or verified; the message says what to do."""


def cache_dir() -> Path:
    """``$OFA_HOME/checkpoints`` (default ``~/.cache/ofa/checkpoints``)."""
    return Path(os.environ.get("OFA_HOME", Path.home() / ".cache" / "ofa")) / "checkpoints"


def names_help() -> str:
    """One line listing the names, for ``--help``."""
    return "ofa:<name> downloads a released checkpoint once into $OFA_HOME (~/.cache/ofa); names: " + \
        ", ".join(CHECKPOINTS)


def resolve(path: str | os.PathLike) -> str:
    """``path`` itself, or for ``ofa:<name>`` the cached file (downloaded first if needed)."""
    path = str(path)
    if not path.startswith(PREFIX):
        return path
    name = path[len(PREFIX):].removesuffix(".pt")
    if name not in CHECKPOINTS:
        close = [known for known in CHECKPOINTS if known.startswith(name)] or \
            difflib.get_close_matches(name, CHECKPOINTS, n=1, cutoff=0.6)
        hint = f"did you mean ofa:{close[0]}? " if close else ""
        raise HubError(f"{path}: unknown checkpoint name; {hint}known: {', '.join(CHECKPOINTS)}")
    target = cache_dir() / f"{name}.pt"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.with_name(target.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process (e.g. another rank) may be downloading it
            if not target.is_file():
                url = os.environ.get("OFA_HUB_URL", DEFAULT_URL).rstrip("/") + f"/{name}.pt"
                download(url, target)
    return str(target)


def resolve_list(paths: str) -> str:
    """fairseq's ``--path a.pt:b.pt`` with ``ofa:<name>`` entries resolved (``split_paths`` splits at ``:``)."""
    parts = paths.split(os.pathsep)
    resolved, i = [], 0
    while i < len(parts):
        if parts[i] == PREFIX[:-1] and i + 1 < len(parts):
            resolved.append(resolve(PREFIX + parts[i + 1]))
            i += 2
        else:
            resolved.append(parts[i])
            i += 1
    return os.pathsep.join(resolved)


def download(url: str, target: Path, retries: int = RETRIES) -> None:
    """``url`` into ``target`` through ``target.part`` (resumed if present), verified, renamed atomically."""
    part = target.with_name(target.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch(url, part)
            break
        except urllib.error.HTTPError as err:
            if err.code != 416 or attempt == retries:  # 416: a stale .part, deleted: start over
                raise HubError(f"cannot download {url}: HTTP {err.code} {err.reason}") from None
        except (OSError, http.client.HTTPException) as err:
            if attempt == retries:
                got = part.stat().st_size if part.exists() else 0
                raise HubError(f"cannot download {url} ({_reason(err)}); {got} bytes are kept in {part} and the "
                               f"next run resumes there. Offline? Copy the file to {target}, or set OFA_HUB_URL "
                               "to a mirror") from None
            logger.warning("download of %s interrupted (%s): resuming", url, _reason(err))
    problem = _checkpoint_problem(part)
    if problem:
        part.unlink()
        raise HubError(f"{url}: the downloaded file is corrupt ({problem}); it was deleted: run again")
    os.replace(part, target)
    logger.info("downloaded %s to %s", url, target)


def _fetch(url: str, part: Path) -> None:
    """Append the rest of ``url`` to ``part``; an error when it stops short of the announced size."""
    from tqdm import tqdm

    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to fetch, or a stale .part: start over
            part.unlink()
        raise
    with response:
        length = response.headers.get("Content-Length")
        if have and response.status != 206:  # the server ignored the range: start over
            have = 0
        total = have + int(length) if length is not None else None
        with open(part, "ab" if have else "wb") as out, \
                tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                     desc=part.name.removesuffix(".part"), disable=None) as bar:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
    got = part.stat().st_size
    if total is not None and got < total:
        raise ConnectionError(f"connection closed after {got} of {total} bytes")


def _checkpoint_problem(path: Path) -> str | None:
    """Why ``path`` is no intact torch checkpoint, or None: torch.save writes a zip archive with a CRC per member
    (files of torch < 1.6 are a pickle stream, with no checksum: their size was checked)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:1] == b"\x80":  # pickle protocol 2+
        return None
    if head != b"PK\x03\x04":  # (zipfile alone would accept bytes before the archive)
        return f"not a torch checkpoint: it starts with {head!r}"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as err:
        return f"not a torch checkpoint archive: {err}"
    return f"CRC mismatch in {bad}" if bad else None


def _reason(err: Exception) -> str:
    return str(getattr(err, "reason", None) or err)
