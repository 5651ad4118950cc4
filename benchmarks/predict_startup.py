"""Start-up of ``predict.py``: seconds from process start to the first JSON line, one image, a tiny checkpoint.

    python benchmarks/predict_startup.py --against main --rounds 5
    python benchmarks/predict_startup.py --against main -- --quantize int8     # extra predict.py options

The default checkpoint is the original's e2e caption checkpoint of the reference fixtures (``ofa_tiny``-sized,
unpacked to a temporary folder), the default image the first of its test rows. ``--against REV`` runs predict.py
of git revision REV too, alternating with this tree ``--rounds`` times, checks both print the same line, and
reports the ratio of their best times (load from other processes on a shared machine hits both alike). Each run
is followed by one that times the phases inside the process (imports, checkpoint to predictor, first prediction),
whose ratios are steadier than the whole process's on a loaded machine.
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from train_step import export_revision

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OFA_SHARED_REFERENCE", REPO.parent / "shared" / "reference"))
PHASES = """
import json, sys, time
start = time.perf_counter()
import predict
from inference.predictor import Request
imported = time.perf_counter()
args = predict.build_parser().parse_args(sys.argv[1:])
predictor = predict.load_predictor(args, "predict.py")
loaded = time.perf_counter()
next(iter(predictor.predict([Request(args.images[0])])))
print(json.dumps({"imports": imported - start, "load": loaded - imported, "prediction": time.perf_counter() - loaded}))
"""


def e2e_caption_inputs(folder: str) -> tuple[str, str]:
    """The e2e caption checkpoint unpacked into ``folder`` and its first test image written there."""
    import base64

    spec = importlib.util.spec_from_file_location("ckpt_pack", SHARED / "ckpt_pack.py")
    ckpt_pack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ckpt_pack)
    checkpoint = os.path.join(folder, "caption.pt")
    ckpt_pack.unpack(str(SHARED / "e2e_caption" / "checkpoint.packed.pt"), checkpoint, str(SHARED / "rp_buckets.pt"))
    row = (SHARED / "e2e_caption" / "test.tsv").read_text().splitlines()[0].split("\t")
    image = os.path.join(folder, "image.jpg")
    column = row[4].replace("-", "+").replace("_", "/")  # either base64 alphabet
    Path(image).write_bytes(base64.b64decode(column + "=" * (-len(column) % 4)))
    return checkpoint, image


def run(tree: Path, argv: list[str]) -> tuple[float, str]:
    """Seconds from starting ``argv`` with ``tree`` on the path to its first stdout line, and that line."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)})  # python -c imports from cwd
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    _, err = proc.communicate()
    if proc.returncode != 0 or not line:
        sys.exit(f"{tree}: {' '.join(argv[:2])} failed:\n{err[-3000:]}")
    return elapsed, line.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", help="checkpoint (default: the reference e2e caption checkpoint)")
    parser.add_argument("--image", help="image file (default: the e2e caption set's first image)")
    parser.add_argument("--against", metavar="REV", help="also time predict.py of git revision REV")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tree (alternating with --against)")
    parser.add_argument("predict_args", nargs="*", help="more predict.py options, after --")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        checkpoint, image = args.path, args.image
        if checkpoint is None or image is None:
            default_checkpoint, default_image = e2e_caption_inputs(folder)
            checkpoint, image = checkpoint or default_checkpoint, image or default_image
        checkpoint = os.path.abspath(checkpoint) if os.path.exists(checkpoint) else checkpoint  # or ofa:NAME
        argv = ["--path", checkpoint, os.path.abspath(image), "--no-progress-bar", *args.predict_args]
        trees = {"this tree": REPO}
        if args.against:
            trees[args.against] = Path(folder) / "against"
            trees[args.against].mkdir()
            export_revision(args.against, str(trees[args.against]))
        times: dict[str, list[float]] = {name: [] for name in trees}
        phases: dict[str, list[dict]] = {name: [] for name in trees}
        lines = {}
        for _ in range(args.rounds):
            for name, tree in reversed(trees.items()):  # the other revision first, as train_step.py --against
                elapsed, lines[name] = run(tree, [str(tree / "predict.py"), *argv])
                times[name].append(elapsed)
                phases[name].append(json.loads(run(tree, ["-c", PHASES, *argv])[1]))
    print(f"predict.py {' '.join(args.predict_args)} on one image, {args.rounds} runs each, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}: seconds to the first JSON line; "
          "phases: best of the runs")
    best_phases = {name: {phase: min(record[phase] for record in records) for phase in records[0]}
                   for name, records in phases.items()}
    for name, values in times.items():
        print(f"{name}: best {min(values):.2f} s, median {statistics.median(values):.2f} s "
              f"({', '.join(f'{v:.2f}' for v in values)}) | "
              + ", ".join(f"{phase} {seconds:.2f} s" for phase, seconds in best_phases[name].items()))
    if args.against:
        this, other = best_phases["this tree"], best_phases[args.against]
        print(f"this tree / {args.against}: x{min(times['this tree']) / min(times[args.against]):.2f} of the time "
              f"(best runs), x{statistics.median(times['this tree']) / statistics.median(times[args.against]):.2f} "
              "(medians) | " + ", ".join(f"{phase} x{this[phase] / other[phase]:.2f}" for phase in this))
        if len(set(lines.values())) != 1:
            sys.exit(f"the outputs differ: {lines}")
    print(f"output: {lines['this tree']}")


if __name__ == "__main__":
    main()
