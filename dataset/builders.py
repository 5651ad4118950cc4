"""Turn images + annotations into the TSV files OFA's datasets read (columns as ``dataset/README.md`` lists).

Each source is a generator of rows, so rows are written as they are made: memory holds the annotation file
and one image at a time, however many rows there are. Every image is decoded before it is written; a
broken one stops the build with an error naming the file, or is skipped and counted with ``skip_bad``.
``dataset/build_tsv.py`` is the command line.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import pickle
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from PIL import Image

from data.file_dataset import clean_text
from data.mm_data.vqa_gen_dataset import answer_scores, normalize_answer

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")



class BuildError(ValueError):
    """Bad input to a builder; the message names the file (and the entry) at fault."""


class ImageEncoder:
    """Image files -> the base64 of their bytes, each decoded once to check it (recent ones cached)."""

    def __init__(self, skip_bad: bool = False, cache_size: int = 16):
        self.skip_bad = skip_bad
        self.skipped: list[str] = []
        self._encode = lru_cache(maxsize=cache_size)(self._encode_uncached)

    def __call__(self, path: str | os.PathLike) -> str | None:
        """Base64 of the image at ``path``; ``None`` (and counted) when it is bad and ``skip_bad`` is set."""
        try:
            return self._encode(str(path))
        except BuildError as err:
            if not self.skip_bad:
                raise
            self.skipped.append(str(path))
            logger.warning("skipping: %s", err)
            return None

    @staticmethod
    def _encode_uncached(path: str) -> str:
        try:
            raw = Path(path).read_bytes()
        except OSError as err:
            raise BuildError(f"{path}: cannot read image ({err.strerror or err})") from None
        try:
            with Image.open(path) as image:
                image.load()  # a full decode: truncated files fail here, not at training time
        except Exception as err:  # PIL raises many types for broken files
            raise BuildError(f"{path}: not a readable image ({type(err).__name__}: {err})") from None
        return base64.b64encode(raw).decode("ascii")


def write_tsv(rows: Iterable[Sequence[str]], path: str | os.PathLike, total: int | None = None,
              progress: bool = True) -> int:
    """Stream ``rows`` to ``path`` (written to ``path.tmp`` first, renamed when complete); returns the count."""
    from tqdm import tqdm

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    count = 0
    try:
        with open(partial, "w", encoding="utf-8", newline="\n") as out, \
                tqdm(total=total, unit="row", desc=path.name, disable=not progress) as bar:
            for row in rows:
                for field in row:
                    if "\t" in field or "\n" in field:
                        raise BuildError(f"{path}: row {count}: a field holds a tab or newline: {field[:40]!r}")
                out.write("\t".join(row) + "\n")
                count += 1
                bar.update(1)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
    return count


def write_pickle(obj, path: str | os.PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(pickle.dumps(obj, protocol=4))


def read_json(path: str | os.PathLike, *keys: str) -> dict:
    """A JSON annotation file that must hold ``keys``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise BuildError(f"{path}: cannot read ({err.strerror or err})") from None
    except json.JSONDecodeError as err:
        raise BuildError(f"{path}: not JSON ({err})") from None
    missing = [key for key in keys if not isinstance(data, dict) or key not in data]
    if missing:
        raise BuildError(f"{path}: no {', '.join(repr(k) for k in missing)} entry (is it the right file?)")
    return data


def _entry(item: Mapping, key: str, path, where: str):
    if key not in item:
        raise BuildError(f"{path}: {where} has no {key!r}")
    return item[key]


# ---- COCO captions ---------------------------------------------------------------------------------------------

def coco_caption_rows(annotations_file, image_dir, split: str, encode: ImageEncoder) -> Iterator[list[str]]:
    """COCO caption annotations -> ``uniq-id, image-id, caption, objects, image``. Training rows hold one
    caption each (uniq-id: the annotation id); valid/test rows one image with its references joined by
    ``&&`` (uniq-id: the image id)."""
    data = read_json(annotations_file, "images", "annotations")
    files = {img["id"]: _entry(img, "file_name", annotations_file, f"image {img.get('id')}") for img in data["images"]}
    captions: dict = {}
    for i, ann in enumerate(data["annotations"]):
        image_id = _entry(ann, "image_id", annotations_file, f"annotation {i}")
        if image_id not in files:
            raise BuildError(f"{annotations_file}: annotation {i} names image {image_id}, which 'images' lacks")
        caption = clean_text(_entry(ann, "caption", annotations_file, f"annotation {i}"))
        captions.setdefault(image_id, []).append((ann.get("id", i), caption))
    for image_id, caps in captions.items():
        image = encode(Path(image_dir) / files[image_id])
        if image is None:
            continue
        if split == "train":
            for ann_id, caption in caps:
                yield [str(ann_id), str(image_id), caption, "", image]
        else:
            yield [str(image_id), str(image_id), "&&".join(c.replace("&&", "&") for _, c in caps), "", image]


def coco_caption_count(annotations_file, split: str) -> int:
    data = read_json(annotations_file, "images", "annotations")
    return len(data["annotations"]) if split == "train" else len({a.get("image_id") for a in data["annotations"]})


def coco_reference_json(annotations_file, out_path) -> None:
    """The references as ``run_scripts/caption/coco_eval.py`` reads them (image ids as strings)."""
    data = read_json(annotations_file, "images", "annotations")
    images = sorted({str(a["image_id"]) for a in data["annotations"]})
    references = {"info": {}, "licenses": [], "type": "captions", "images": [{"id": i} for i in images],
                  "annotations": [{"image_id": str(a["image_id"]), "id": k + 1, "caption": clean_text(a["caption"])}
                                  for k, a in enumerate(data["annotations"])]}
    Path(out_path).write_text(json.dumps(references) + "\n", encoding="utf-8")


# ---- VQA v2 ----------------------------------------------------------------------------------------------------

def vqa_answer_lists(annotations_file) -> dict[int, list[str]]:
    """question id -> its annotators' normalised answers."""
    data = read_json(annotations_file, "annotations")
    answers = {}
    for i, ann in enumerate(data["annotations"]):
        qid = _entry(ann, "question_id", annotations_file, f"annotation {i}")
        answers[qid] = [normalize_answer(_entry(a, "answer", annotations_file, f"question {qid}'s answer"))
                        for a in _entry(ann, "answers", annotations_file, f"annotation {i}")]
    return answers


def build_ans2label(answer_lists: Iterable[Sequence[str]], min_count: int) -> dict[str, int]:
    """Candidate answers: those given (as a question's most common answer) at least ``min_count`` times."""
    counts = Counter(Counter(answers).most_common(1)[0][0] for answers in answer_lists if answers)
    kept = sorted((a for a, c in counts.items() if c >= min_count), key=lambda a: (-counts[a], a))
    return {answer: i for i, answer in enumerate(kept)}


def vqa_rows(questions_file, answers: Mapping[int, Sequence[str]], image_dir, image_pattern: str,
             encode: ImageEncoder, ans2label: Mapping[str, int] | None = None) -> Iterator[list[str]]:
    """VQA v2 questions + answers -> ``question-id, image-id, question, answers, objects, image``; answers as
    ``conf|!+answer`` joined by ``&&``. With ``ans2label`` (training), answers outside it are dropped and
    questions left without one are skipped (counted in the log)."""
    data = read_json(questions_file, "questions")
    skipped = 0
    for i, q in enumerate(data["questions"]):
        qid = _entry(q, "question_id", questions_file, f"question {i}")
        image_id = _entry(q, "image_id", questions_file, f"question {qid}")
        if qid not in answers:
            raise BuildError(f"{questions_file}: question {qid} has no annotation in the annotations file")
        scores = answer_scores(answers[qid])
        if ans2label is not None:
            scores = {a: s for a, s in scores.items() if a in ans2label}
            if not scores:
                skipped += 1
                continue
        image = encode(Path(image_dir) / image_pattern.format(image_id=image_id))
        if image is None:
            continue
        answer_text = "&&".join(f"{s:.1f}|!+{a}" for a, s in scores.items())
        yield [str(qid), str(image_id), clean_text(_entry(q, "question", questions_file, f"question {qid}")),
               answer_text, "", image]
    if skipped:
        logger.warning("%s: %d question(s) skipped: none of their answers is a candidate answer", questions_file,
                       skipped)


# ---- RefCOCO / RefCOCO+ / RefCOCOg -----------------------------------------------------------------------------

def load_refs(path) -> list[dict]:
    """The refs file: ``refs(unc).p`` as distributed (a pickle; trusted input only) or the same list as JSON."""
    if str(path).endswith(".json"):
        refs = json.loads(Path(path).read_text(encoding="utf-8"))
    else:
        with open(path, "rb") as f:
            refs = pickle.load(f, encoding="latin1")
    if not isinstance(refs, list):
        raise BuildError(f"{path}: expected a list of refs, got {type(refs).__name__}")
    return refs


def refcoco_rows(refs_file, instances_file, image_dir, split: str, encode: ImageEncoder) -> Iterator[list[str]]:
    """Refs of ``split`` + COCO instances -> ``uniq-id, image-id, text, x0,y0,x1,y1, image`` (one row per
    sentence; uniq-id ``<ref_id>_<k>``; the box from the referred annotation's ``[x, y, w, h]``)."""
    instances = read_json(instances_file, "images", "annotations")
    files = {img["id"]: img["file_name"] for img in instances["images"]}
    boxes = {ann["id"]: ann["bbox"] for ann in instances["annotations"]}
    for ref in load_refs(refs_file):
        if ref.get("split") != split:
            continue
        ref_id = _entry(ref, "ref_id", refs_file, "a ref")
        ann_id = _entry(ref, "ann_id", refs_file, f"ref {ref_id}")
        if ann_id not in boxes or ref.get("image_id") not in files:
            raise BuildError(f"{refs_file}: ref {ref_id} names annotation {ann_id} / image {ref.get('image_id')}, "
                             f"not in {instances_file}")
        x, y, w, h = (float(v) for v in boxes[ann_id])
        image = encode(Path(image_dir) / files[ref["image_id"]])
        if image is None:
            continue
        for k, sentence in enumerate(_entry(ref, "sentences", refs_file, f"ref {ref_id}")):
            yield [f"{ref_id}_{k}", str(ref["image_id"]), clean_text(sentence["sent"]),
                   f"{x:.2f},{y:.2f},{x + w:.2f},{y + h:.2f}", image]


# ---- ImageNet-style class folders ------------------------------------------------------------------------------

def class_folder_names(root, names_file=None) -> dict[str, str]:
    """Class folder -> class name, in sorted folder order; ``names_file`` lines are ``folder name words``."""
    folders = sorted(d.name for d in Path(root).iterdir() if d.is_dir())
    if not folders:
        raise BuildError(f"{root}: no class folders")
    names = {folder: folder.replace("_", " ") for folder in folders}
    if names_file:
        for line_number, line in enumerate(Path(names_file).read_text(encoding="utf-8").splitlines(), 1):
            folder, _, name = line.strip().partition(" ")
            if folder in names and name:
                names[folder] = clean_text(name)
    if len(set(names.values())) != len(names):
        raise BuildError(f"{names_file or root}: two classes share a name; class names must be unique")
    return names


def class_folder_files(root, names: Mapping[str, str]) -> list[tuple[Path, str]]:
    return [(path, folder) for folder in names for path in sorted((Path(root) / folder).iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES]


def class_folder_rows(files: Iterable[tuple[Path, str]], names: Mapping[str, str],
                      encode: ImageEncoder) -> Iterator[list[str]]:
    """``image, label (1-indexed, folder order), class name``; ``class2label`` is ``{name: label - 1}``."""
    labels = {folder: i + 1 for i, folder in enumerate(names)}
    for path, folder in files:
        image = encode(path)
        if image is not None:
            yield [image, str(labels[folder]), names[folder]]


def class2label(names: Mapping[str, str]) -> dict[str, int]:
    return {name: i for i, name in enumerate(names.values())}


# ---- generic JSON lines ----------------------------------------------------------------------------------------

def _task_class(name: str):
    import tasks  # noqa: F401  (registers the OFA tasks)
    from fairseq.tasks import TASK_REGISTRY

    return TASK_REGISTRY.get(name)


def annotation_tasks() -> list[str]:
    """The tasks whose rows JSON lines can describe (``OFATask.rows_of_annotation``)."""
    from fairseq.tasks import TASK_REGISTRY

    from tasks.ofa_task import OFATask

    _task_class("caption")
    return sorted(name for name, cls in TASK_REGISTRY.items() if issubclass(cls, OFATask) and cls.annotation_keys)


def selected_cols(task: str) -> str:
    """How the task's dataset reads the files written here (its ``--selected-cols``)."""
    return _task_class(task).tsv_columns


def jsonl_rows(path, task: str, split: str, encode: ImageEncoder, image_dir=None,
               labels: dict[str, int] | None = None) -> Iterator[list[str]]:
    """JSON lines ``{"image": PATH, ...}`` (paths relative to ``image_dir``, else to the file's folder) ->
    the task's columns. Keys: caption ``caption`` (a string or a list of references); vqa_gen ``question`` and
    ``answers`` ({answer: confidence} or a list of annotators' answers) or ``answer``; refcoco ``text`` and
    ``box`` [x0, y0, x1, y1] in pixels; snli_ve ``hypothesis``, ``label``, optional ``premise``;
    image_classify ``label`` (numbered in order of appearance into ``labels``). ``id`` is optional."""
    if task not in annotation_tasks():
        raise BuildError(f"--task {task}: JSON lines build {', '.join(annotation_tasks())}")
    task_class = _task_class(task)
    base = Path(image_dir) if image_dir else Path(path).parent
    with open(path, encoding="utf-8") as lines:
        for line_number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path}: line {line_number}"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise BuildError(f"{where}: not JSON ({err})") from None
            missing = [key for key in ("image", *task_class.annotation_keys) if key not in item]
            if missing:
                raise BuildError(f"{where}: missing {', '.join(repr(k) for k in missing)}")
            image = encode(base / item["image"])
            if image is None:
                continue
            uid = clean_text(item.get("id", line_number))
            try:
                yield from task_class.rows_of_annotation(item, uid, image, split, labels)
            except (ValueError, TypeError, AttributeError, KeyError) as err:
                raise BuildError(f"{where}: {type(err).__name__}: {err}") from None
