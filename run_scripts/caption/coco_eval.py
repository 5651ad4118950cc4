"""Score a caption result file against COCO-format references: ``python coco_eval.py RESULTS.json REFERENCES.json``."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from utils.metrics import coco_caption_file_scores  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    for name, value in coco_caption_file_scores(sys.argv[1], sys.argv[2]).items():
        print(f"{name}: {value:.3f}")
