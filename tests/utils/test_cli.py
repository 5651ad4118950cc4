"""train.py/evaluate.py --help with --task/--arch/--criterion lists those components' options."""
import pytest


@pytest.mark.parametrize("script, argv, expected", [
    ("evaluate", ["--task", "vqa_gen", "--help"], ["--patch-image-size", "--ans2label-file", "--beam"]),
    ("train", ["--task", "refcoco", "--arch", "ofa_tiny", "--criterion", "adjust_label_smoothed_cross_entropy",
               "-h"], ["--max-image-size", "--scale-attn", "--label-smoothing", "--store-ema"]),
])
def test_help_lists_task_model_and_criterion_options(script, argv, expected, capsys):
    module = __import__(script)
    with pytest.raises(SystemExit) as exit_info:
        module.cli_main(argv) if script == "evaluate" else _train_main(module, argv)
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert [option for option in expected if option not in text] == []


def _train_main(train, argv):
    import sys

    saved, sys.argv = sys.argv, ["train.py", *argv]  # train.cli_main reads sys.argv, as fairseq's does
    try:
        train.cli_main()
    finally:
        sys.argv = saved
