"""The shape of the code: utils/ at the bottom, library code importing no command-line script."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

UPPER_PACKAGES = {"models", "tasks", "criterions", "data", "inference", "scripts", "trainer", "training", "train",
                  "evaluate", "predict", "serve"}


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


LIBRARY = ("models", "tasks", "criterions", "data", "utils", "inference", "training", "trainer.py")
COMMAND_LINES = {"scripts", "train", "evaluate", "predict", "serve", "run_scripts", "dataset", "benchmarks"}


def test_library_code_imports_no_command_line_script():
    """Command lines call into the library, never the other way round (conversion lives next to the model)."""
    paths = [REPO / name for name in LIBRARY if name.endswith(".py")]
    paths += [path for name in LIBRARY if not name.endswith(".py") for path in (REPO / name).rglob("*.py")]
    offenders = {str(path.relative_to(REPO)): sorted(imported_packages(path) & COMMAND_LINES) for path in paths}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_trainer_is_a_thin_composition():
    """trainer.py composes the one-job modules of training/; the jobs themselves live there."""
    assert len((REPO / "trainer.py").read_text(encoding="utf-8").splitlines()) <= 300
