"""Pickles read from user paths (answer sets, CIDEr-D cached tokens, row offsets) never run code."""
import json
import pickle
from collections import defaultdict

import numpy as np
import pytest

from utils.safe_pickle import UnsafePickleError, load_pickle


class _CreatesFileWhenUnpickled:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def malicious(tmp_path):
    """(path of a pickle that creates ``marker`` when loaded with pickle.load, marker path)."""
    marker = tmp_path / "created_by_unpickling"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"yes": 0, "no": _CreatesFileWhenUnpickled(str(marker))}))
    with open(path, "rb") as f:  # the file really is harmful to plain pickle
        pickle.load(f)
    assert marker.exists()
    marker.unlink()
    return path, marker


def test_ans2label_file_refuses_code_and_accepts_json(make_task, malicious, tmp_path):
    path, marker = malicious
    rows = [[1, 0, "is it red?", "1.0|!+yes", "", "x"]]
    with pytest.raises(UnsafePickleError, match=rf"{path}: refusing to load --ans2label-file: it pickles 'io\.open'"):
        make_task("vqa_gen", rows, selected_cols="0,5,2,3,4", ans2label_file=str(path))
    assert not marker.exists()

    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps(["yes", "no", "red"]))
    task, _ = make_task("vqa_gen", rows, selected_cols="0,5,2,3,4", ans2label_file=str(answers))
    assert task.ans2label_dict == {"yes": 0, "no": 1, "red": 2}
    answers.write_text(json.dumps({"yes": 1, "no": 0}))
    task, _ = make_task("vqa_gen", rows, selected_cols="0,5,2,3,4", ans2label_file=str(answers))
    assert task.ans2label_dict == {"yes": 1, "no": 0}
    plain = tmp_path / "trainval_ans2label.pkl"
    plain.write_bytes(pickle.dumps({"yes": 0, "no": 1}))
    task, _ = make_task("vqa_gen", rows, selected_cols="0,5,2,3,4", ans2label_file=str(plain))
    assert task.ans2label_dict == {"yes": 0, "no": 1}


def test_cider_cached_tokens_refuse_code_and_read_python2_pickles(malicious, tmp_path):
    from utils.cider_d import CiderD, load_cached_tokens

    path, marker = malicious
    with pytest.raises(UnsafePickleError, match="refusing to load CIDEr-D cached tokens"):
        CiderD(df=str(path))
    assert not marker.exists()
    # the published coco-train-words.p: Python 2 cPickle (protocol 0/2, __builtin__ names), a defaultdict
    frequencies = defaultdict(float, {("a",): 2.0, ("a", "cat"): 1.0})
    for protocol in (0, 2):
        data = pickle.dumps({"document_frequency": frequencies, "ref_len": np.float64(3.0)}, protocol=protocol)
        cached = tmp_path / f"words{protocol}.p"
        cached.write_bytes(data.replace(b"builtins", b"__builtin__"))
        assert load_cached_tokens(str(cached)) == ({("a",): 2.0, ("a", "cat"): 1.0}, 3.0)


def test_row_offset_index_refuses_code(malicious, write_tsv, tmp_path):
    from data.file_dataset import FileDataset

    path, marker = malicious
    tsv = write_tsv([["1", "a"], ["2", "b"]])
    (tmp_path / "data.tsv.index").write_bytes(path.read_bytes())
    with pytest.raises(UnsafePickleError, match="cached row offsets"):
        FileDataset(tsv, cached_index=True)
    assert not marker.exists()
    (tmp_path / "data.tsv.index").write_bytes(pickle.dumps((2, np.array([0, 4], dtype=np.int64))))
    assert FileDataset(tsv, cached_index=True)[1] == ["2", "b"]


def test_garbage_is_one_line(tmp_path):
    path = tmp_path / "notes.pkl"
    path.write_text("not a pickle\n")
    with pytest.raises(pickle.UnpicklingError) as err:
        load_pickle(str(path), "--ans2label-file")
    assert str(path) in str(err.value) and "\n" not in str(err.value)
