"""Rows/s of the caption data path (read + decode + transform + collate) at 480px, next to a naive baseline.

Generates its own synthetic caption TSV in a temporary folder, then measures in the same run:
  naive     - read the whole file with readlines(), per row base64 + PIL + torchvision, stack into a batch
  ours, w=0 - OFA's task/dataset/collater through fairseq's batch iterator, no DataLoader workers
  ours, w=2 - the same with 2 DataLoader workers
and prints rows/s and the ratio to the naive baseline, plus CPU ms per row of the in-process runs (less
sensitive than wall time to other processes sharing the cores; the load average is printed with the results).
With workers, each batch of float32 480px images (22 MB at batch 8) crosses to the main process through
shared memory, so workers pay page faults the in-process run does not.

    python benchmarks/data_throughput.py --rows 256 --batch-size 8
"""
import argparse
import base64
import os
import sys
import tempfile
import time
from io import BytesIO

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_caption_tsv(path: str, rows: int, seed: int = 0, image_size: tuple[int, int] = (640, 480)) -> None:
    """Caption rows (uniq-id, image-id, caption, objects, JPEG of ``image_size``, 640x480 as COCO's)."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for i in range(rows):
            blocks = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
            image = Image.fromarray(blocks).resize(image_size, Image.BILINEAR)
            buffer = BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            b64 = base64.urlsafe_b64encode(buffer.getvalue()).decode()
            f.write(f"{i}\t{i}\ta person riding a horse on the beach number {i}\tperson&&horse\t{b64}\n")


def naive_rows_per_second(path: str, patch_image_size: int, batch_size: int) -> tuple[float, float]:
    transform = T.Compose([
        lambda im: im.convert("RGB"),
        T.Resize((patch_image_size, patch_image_size), interpolation=T.InterpolationMode.BICUBIC),
        T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3),
    ])
    start, cpu = time.perf_counter(), time.process_time()
    with open(path) as f:
        lines = f.readlines()
    batch = []
    for line in lines:
        columns = line.rstrip("\n").split("\t")
        batch.append(transform(Image.open(BytesIO(base64.urlsafe_b64decode(columns[4])))))
        if len(batch) == batch_size:
            torch.stack(batch)
            batch = []
    if batch:
        torch.stack(batch)
    return len(lines) / (time.perf_counter() - start), (time.process_time() - cpu) * 1e3 / len(lines)


def ours_rows_per_second(path: str, patch_image_size: int, batch_size: int, workers: int) -> tuple[float, float]:
    import tasks  # noqa: F401
    from fairseq.tasks import setup_task
    from omegaconf import OmegaConf

    task = setup_task(OmegaConf.create({"_name": "caption", "data": f"{path},{path}", "selected_cols": "0,4,2",
                                        "patch_image_size": patch_image_size}))
    start, cpu = time.perf_counter(), time.process_time()
    task.load_dataset("valid")
    itr = task.get_batch_iterator(task.datasets["valid"], max_sentences=batch_size, num_workers=workers)
    rows = sum(batch["nsentences"] for batch in itr.next_epoch_itr(shuffle=False) if batch)
    return rows / (time.perf_counter() - start), (time.process_time() - cpu) * 1e3 / rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--patch-image-size", type=int, default=480)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the best of each is reported")
    parser.add_argument("--image-size", default="640x480", help="WxH of the synthetic JPEGs")
    args = parser.parse_args()
    image_size = tuple(int(v) for v in args.image_size.split("x"))
    torch.set_num_threads(1)  # comparable per-process work; workers add processes, not threads

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "caption.tsv")
        write_caption_tsv(path, args.rows, image_size=image_size)
        print(f"{args.rows} caption rows, {args.image_size} JPEG -> {args.patch_image_size}px, "
              f"batch {args.batch_size}, file {os.path.getsize(path) / 2 ** 20:.1f} MiB, {os.cpu_count()} CPUs, "
              f"best of {args.repeats}, load average {os.getloadavg()[0]:.1f}")
        runs = {
            "naive (readlines + PIL)": lambda: naive_rows_per_second(path, args.patch_image_size, args.batch_size),
            "ours, 0 workers": lambda: ours_rows_per_second(path, args.patch_image_size, args.batch_size, 0),
            "ours, 2 workers": lambda: ours_rows_per_second(path, args.patch_image_size, args.batch_size, 2),
        }
        best = {name: (0.0, float("inf")) for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                rows_per_second, cpu_ms = run()
                best[name] = (max(best[name][0], rows_per_second), min(best[name][1], cpu_ms))
        naive_rate, naive_cpu = best["naive (readlines + PIL)"]
        for name, (rows_per_second, cpu_ms) in best.items():
            # with workers the main process only receives batches: its CPU time says nothing about the work
            cpu = f"{cpu_ms:6.2f} CPU ms/row  {naive_cpu / cpu_ms:.2f}x" if "2 workers" not in name else ""
            print(f"{name:<28}{rows_per_second:8.1f} rows/s   {rows_per_second / naive_rate:.2f}x   {cpu}")
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
