#!/usr/bin/env python3 -u
"""Try a checkpoint in the browser: a local web page and a JSON endpoint, the model loaded once.

    python serve.py --path ofa:caption_large_best_clean          # then open http://127.0.0.1:7860
    curl -F image=@dog.jpg -F text="the dog on the left" http://127.0.0.1:7860/predict

``POST /predict`` takes a multipart ``image`` (file) and optional ``text`` (question, referring expression or
hypothesis) and ``premise``; it answers with the JSON line predict.py writes (without ``"image"``), or a 4xx
``{"error": ...}``. The model runs in one thread: concurrent requests queue up and go through it in batches of up
to ``--batch-size``. The server binds 127.0.0.1 (this machine only) unless ``--host`` says otherwise.
"""
import argparse
import asyncio
import concurrent.futures
import logging
import queue
import sys
import threading
from io import BytesIO
from pathlib import Path

from predict import add_model_arguments, load_predictor

WEB_DIR = Path(__file__).resolve().parent / "inference" / "web"
#: the text field each task needs, as the page labels it (other tasks take an image only)
logger = logging.getLogger("ofa.serve")


class BatchingWorker:
    """Runs the predictor in one thread; requests submitted meanwhile are batched (up to its batch size)."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="ofa-model", daemon=True)
        self.thread.start()

    def submit(self, request) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.queue.put((request, future))
        return future

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()

    def _run(self) -> None:
        from inference.requests import predict_each

        stop = False
        while not stop:
            item = self.queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.predictor.batch_size and not self.queue.empty():
                item = self.queue.get()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                results = predict_each(self.predictor, [request for request, _ in batch])
            except Exception as err:  # noqa: BLE001  (a bug or out of memory: every waiting request hears of it)
                logger.exception("prediction failed")
                results = [err] * len(batch)
            for (_, future), result in zip(batch, results):
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


class UploadTooLarge(Exception):
    pass


def limit_body(app, max_bytes: int):
    """ASGI middleware: a request body over ``max_bytes`` gets 413 before it is kept in memory or on disk."""
    from starlette.responses import JSONResponse

    async def too_large(receive, send):
        while (await receive()).get("more_body"):  # read and drop the rest, so the client hears the answer
            pass
        message = f"upload over the limit of {max_bytes / 2**20:g} MB (serve.py --max-upload-mb)"
        await JSONResponse({"error": message}, status_code=413)({"type": "http"}, receive, send)

    async def middleware(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and int(declared) > max_bytes:
            return await too_large(receive, send)
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise UploadTooLarge
            return message

        try:
            await app(scope, counting_receive, send)
        except UploadTooLarge:
            await too_large(receive, send)
    return middleware


def build_app(predictor, max_upload_bytes: int = 20 * 2**20, max_pixels: int = 40_000_000):
    """The FastAPI app: ``/`` (the page), ``/info`` (what the task needs), ``POST /predict``."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request as HTTPRequest
    from fastapi.responses import HTMLResponse, JSONResponse
    from PIL import Image, UnidentifiedImageError
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException

    from inference.predictor import PredictionError, Request

    worker = BatchingWorker(predictor)

    @asynccontextmanager
    async def lifespan(app):
        yield
        worker.close()

    app = FastAPI(title="OFA", lifespan=lifespan)
    task = predictor.task_name
    task_class = type(predictor.task)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):  # e.g. a malformed multipart body
        return error(exc.status_code, str(exc.detail))

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return (WEB_DIR / "index.html").read_text(encoding="utf-8")

    @app.get("/info")
    async def info():
        return {"task": task, "text": task_class.request_label, "premise": task_class.request_premise,
                "max_upload_bytes": max_upload_bytes, "max_pixels": max_pixels}

    @app.post("/predict")
    async def predict(request: HTTPRequest):  # a real annotation (no __future__ import): FastAPI reads it
        form = await request.form(max_files=1, max_fields=4)
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            return error(400, "no image: send the image file as the multipart field 'image'")
        raw = await upload.read()
        try:
            with Image.open(BytesIO(raw)) as image:
                width, height = image.size
        except UnidentifiedImageError:
            return error(400, f"{upload.filename}: not an image (PIL cannot read it)")
        # Pillow's own decompression-bomb check is off (data/images.py applies --max-image-pixels per row): this
        # is the server's limit
        if width * height > max_pixels:
            return error(413, f"{upload.filename}: {width}x{height} = {width * height} pixels, over the limit of "
                              f"{max_pixels} (serve.py --max-pixels)")
        texts = {key: form.get(key) or None for key in ("text", "premise")}
        if texts["text"] and not task_class.request_label:
            return error(400, f"task {task} takes no text: send the image only")
        try:
            output = await asyncio.wrap_future(worker.submit(Request(raw, texts["text"], texts["premise"])))
        except PredictionError as err:
            return error(400, str(err).replace("<bytes>", upload.filename or "image"))
        return output

    return limit_body(app, max_upload_bytes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; 0.0.0.0 serves other machines too (no authentication)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--max-upload-mb", type=float, default=20, help="larger uploads get 413")
    parser.add_argument("--max-pixels", type=int, default=40_000_000, help="larger images get 413")
    parser.add_argument("--verbose", action="store_true", help="INFO logs on the console, every request logged")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from utils.logging_setup import configure_logging

    configure_logging(verbose=args.verbose)
    import uvicorn

    from inference.predictor import PredictionError
    from utils.checkpoint_utils import CheckpointError

    try:
        predictor = load_predictor(args, "serve.py")
    except (PredictionError, CheckpointError, OSError, ValueError) as err:
        raise SystemExit("serve.py: error: " + " ".join(str(err).split())) from None
    app = build_app(predictor, int(args.max_upload_mb * 2**20), args.max_pixels)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"serve.py: listening on {args.host}: other machines can use this model (no authentication)",
              file=sys.stderr)
    print(f"serving {predictor.task_name} on http://{args.host}:{args.port} (Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning")


if __name__ == "__main__":
    main()
