"""Flags that cannot work are refused at startup in one line naming the flag."""
import pytest

from data.file_dataset import FileDataset, RowError
from utils.option_checks import OptionError, check_generation_options, check_training_options, \
    exit_if_user_dir_missing


def _config(parser_name: str, *flags: str):
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import tasks  # noqa: F401

    training = parser_name == "get_training_parser"
    parser = getattr(options, parser_name)()
    return convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, [
        "train.tsv,valid.tsv", "--task", "caption", *(["--arch", "ofa_tiny", "--optimizer", "adam"] if training else []),
        *flags]))


@pytest.mark.parametrize("flags,message", [
    (("--lr", "0"), r"--lr 0\.0: must be positive"),
    (("--lr=-1e-4",), r"--lr -0\.0001: must be positive \(a negative rate trains in reverse\)"),
    (("--batch-size", "0"), r"--batch-size 0: must be at least 1"),
    (("--batch-size", "-4"), r"--batch-size -4: must be at least 1"),
    (("--batch-size", "4", "--batch-size-valid", "0"), r"--batch-size-valid 0: must be at least 1"),
    (("--selected-cols", "0,four,2"), r"--selected-cols '0,four,2': expected comma-separated column numbers"),
    (("--eval-cider", "--eval-args", '{"beam": 0}'), r"--eval-args: beam 0 must be an integer of at least 1"),
    (("--eval-args", "{beam: 5}"), r"--eval-args is not JSON"),
])
def test_training_flags_refused(flags, message):
    with pytest.raises(OptionError, match=message):
        check_training_options(_config("get_training_parser", "--lr", "1e-4", *flags))


def test_sound_training_and_generation_flags_pass():
    check_training_options(_config("get_training_parser", "--lr", "1e-4", "--batch-size", "2", "--selected-cols",
                                   "0,4,2", "--eval-args", '{"beam": 5}'))
    check_generation_options(_config("get_generation_parser", "--beam", "1", "--batch-size", "2"))


@pytest.mark.parametrize("beam", ["0", "-3"])
def test_beam_below_one_refused(beam):
    with pytest.raises(OptionError, match=rf"--beam: beam {beam} must be an integer of at least 1"):
        check_generation_options(_config("get_generation_parser", "--beam", beam))


def test_missing_user_dir_is_named(tmp_path, capsys):
    for argv in (["data", "--user-dir", str(tmp_path / "nowhere")], [f"--user-dir={tmp_path / 'nowhere'}"]):
        with pytest.raises(SystemExit, match=rf"train\.py: error: --user-dir {tmp_path}/nowhere is not a directory"):
            exit_if_user_dir_missing("train.py", argv)
    exit_if_user_dir_missing("train.py", ["data", "--user-dir", str(tmp_path)])


def test_empty_data_file_is_refused(make_task, write_tsv):
    import tasks  # noqa: F401
    from fairseq.tasks import setup_task
    from omegaconf import OmegaConf

    empty, rows = write_tsv([], "empty.tsv"), write_tsv([["1", "0", "a cat", "", "x"]], "rows.tsv")
    task = setup_task(OmegaConf.create({"_name": "caption", "data": f"{rows},{empty}", "selected_cols": "0,4,2"}))
    for split in ("valid", "test"):
        with pytest.raises(OptionError, match=rf"--data: the {split} file {empty} is empty"):
            task.load_dataset(split)
    task = setup_task(OmegaConf.create({"_name": "caption", "data": f"{empty},{rows}", "selected_cols": "0,4,2"}))
    with pytest.raises(OptionError, match=rf"--data: the train file {empty} is empty"):
        task.load_dataset("train")


def test_leading_empty_line_is_named_not_blamed_on_selected_cols(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text("\n1\t0\ta cat\t\tx\n")
    with pytest.raises(RowError, match=r"data\.tsv: row 0 \(line 1\): is empty, but the first row sets the number "
                                       r"of columns"):
        FileDataset(str(path), "0,4,2")
