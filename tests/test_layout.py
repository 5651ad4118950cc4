"""The shape of the code (issue #16): utils/ at the bottom, and a short caption path from TSV row to loss."""
import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

UPPER_PACKAGES = {"models", "tasks", "criterions", "data", "inference", "scripts", "trainer", "train", "evaluate",
                  "predict", "serve"}


def imported_packages(path: Path) -> set:
    """Top-level names of every module ``path`` imports (absolute imports; the tree has no relative ones)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_utils_imports_nothing_above_it():
    offenders = {str(path.relative_to(REPO)): sorted(imported_packages(path) & UPPER_PACKAGES)
                 for path in (REPO / "utils").rglob("*.py")}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_caption_path_from_tsv_row_to_loss_spans_at_most_ten_files(tmp_path, b64_image):
    """Every repository file whose code runs between loading the TSV and the loss of one caption train step."""
    import criterions  # noqa: F401  (registers the OFA components with fairseq)
    import models  # noqa: F401
    import tasks  # noqa: F401
    from fairseq import optim, options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.tasks import setup_task

    tsv = tmp_path / "caption.tsv"
    tsv.write_text("".join(f"{i}\t{b64_image()}\ta red square\n" for i in range(2)), encoding="utf-8")
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        f"{tsv},{tsv}", "--task", "caption", "--arch", "ofa_tiny", "--criterion", "adjust_label_smoothed_cross_entropy",
        "--user-dir", str(REPO), "--bpe-dir", str(REPO / "utils" / "BPE"), "--patch-image-size", "64",
        "--selected-cols", "0,1,2", "--optimizer", "adam", "--lr", "1e-4"])
    cfg = convert_namespace_to_omegaconf(args)
    task = setup_task(cfg.task)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    optimizer = optim.build_optimizer(cfg.optimizer, list(model.parameters()))

    files = set()

    def record(frame, event, arg):
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(REPO) and not path.is_relative_to(REPO / "tests") and ".venv" not in path.parts:
            files.add(str(path.relative_to(REPO)))

    sys.setprofile(record)
    try:
        task.load_dataset("train")
        dataset = task.datasets["train"]
        batch = dataset.collater([dataset[0], dataset[1]])
        loss, _, _ = task.train_step(batch, model, criterion, optimizer, update_num=0)
    finally:
        sys.setprofile(None)
    assert loss.item() > 0
    assert "data/mm_data/caption_dataset.py" in files and "criterions/label_smoothed_cross_entropy.py" in files
    assert len(files) <= 10, sorted(files)
