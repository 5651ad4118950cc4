"""Many requests in one process: JSON-lines records (``predict.py --requests``) and batches that survive a bad one.

A record is ``{"image": PATH, "question"|"text": ..., "premise": ..., "instruction": ..., "id": ...}``; ``id``
(any JSON value) is copied to the output line. The Python API takes the same dicts
(``OFAPredictor.predict([{"image": "a.jpg", "question": "..."}])``).
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Iterator, Sequence

from inference.predictor import PredictionError, Request

TEXT_KEYS = ("question", "text")  # the same field: a question (vqa_gen), expression (refcoco), hypothesis (snli_ve)
RECORD_KEYS = ("image", *TEXT_KEYS, "premise", "instruction", "id")


def request_from_record(record: dict, base_dir: str | None = None) -> Request:
    """The :class:`Request` of one record; relative image paths are read from ``base_dir`` when given."""
    if not isinstance(record, dict):
        raise PredictionError(f"a request is a JSON object with an \"image\", got {type(record).__name__}")
    unknown = sorted(set(record) - set(RECORD_KEYS))
    if unknown:
        raise PredictionError(f"unknown key(s) {', '.join(map(repr, unknown))} (known: {', '.join(RECORD_KEYS)})")
    if "image" not in record:
        raise PredictionError("no \"image\" (the image file's path)")
    if all(key in record for key in TEXT_KEYS):
        raise PredictionError("give \"question\" (vqa_gen) or \"text\" (refcoco, snli_ve), not both")
    fields = {key: record.get(key) for key in ("image", "text", "question", "premise", "instruction")}
    for key, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise PredictionError(f"\"{key}\" must be a string, got {json.dumps(value)}")
    image = fields["image"]
    if base_dir is not None and not os.path.isabs(image):
        image = os.path.join(base_dir, image)
    text = fields["question"] if fields["question"] is not None else fields["text"]
    return Request(image, text, fields["premise"], fields["instruction"])


def read_records(lines: Iterable[str], source: str) -> Iterator[tuple[int, dict | PredictionError]]:
    """``(line number, record)`` of each non-blank line, or a :class:`PredictionError` naming ``source:line``."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            yield number, PredictionError(f"{source}:{number}: not a JSON object ({err.msg}, column {err.colno})")


def predict_each(predictor, requests: Sequence[Request], first_index: int = 0) -> list[dict | PredictionError]:
    """One output per request, as :meth:`OFAPredictor.predict_batch`, but a request that fails (a missing image, a
    question the task cannot take) gives its :class:`PredictionError` instead of failing its whole batch."""
    try:
        return predictor.predict_batch(requests, first_index)
    except PredictionError:
        if len(requests) == 1:
            raise
    outputs: list[dict | PredictionError] = []
    for i, request in enumerate(requests):  # find the bad ones; the good ones' outputs do not depend on batching
        try:
            outputs.extend(predictor.predict_batch([request], first_index + i))
        except PredictionError as err:
            outputs.append(err)
    return outputs


def answer_records(predictor, lines: Iterable[str], source: str, base_dir: str | None,
                   progress=None) -> Iterator[tuple[Request | None, dict]]:
    """``(request, output line)`` of every record of ``lines``, in input order, ``predictor.batch_size`` at a time.
    A bad record's line is ``{"line": N, "error": ...}`` (and its "image"/"id"); the others are still answered."""
    pending: list[tuple[int, object, Request | PredictionError]] = []

    def flush() -> Iterator[dict]:
        requests = [request for _, _, request in pending if isinstance(request, Request)]
        results = iter(predict_each(predictor, requests) if requests else [])
        for number, record, request in pending:
            good = isinstance(request, Request)
            yield (request if good else None), _line(number, record, next(results) if good else request, source)
        if progress:
            progress(len(pending))
        pending.clear()

    for number, record in read_records(lines, source):
        try:
            if isinstance(record, PredictionError):
                raise record
            pending.append((number, record, request_from_record(record, base_dir)))
        except PredictionError as err:
            pending.append((number, record, err))
        if sum(isinstance(request, Request) for _, _, request in pending) == predictor.batch_size:
            yield from flush()
    if pending:
        yield from flush()


def _line(number: int, record, result: dict | PredictionError, source: str) -> dict:
    known = {key: record[key] for key in ("image", "id") if isinstance(record, dict) and key in record}
    if isinstance(result, PredictionError):
        message = str(result)
        prefix = f"{source}:{number}: "
        return {**known, "line": number, "error": message if message.startswith(prefix) else prefix + message}
    return {**known, **result}
