"""ROUGE-1/2/L (F1, stemmed, x100) of Gigaword predictions: ``python eval_rouge.py test_predict.json``."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from utils.metrics import rouge_scores  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    records = json.loads(Path(sys.argv[1]).read_text())
    scores = rouge_scores([r["hyp"] for r in records], [r["ref"] for r in records])
    print(", ".join(f"{name}: {100 * value:.2f}" for name, value in scores.items()))
