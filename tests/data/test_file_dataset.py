"""FileDataset: byte offsets, contiguous rank slices, seek for resume, per-process file handles."""
import pickle

import pytest
import torch

from data.file_dataset import FileDataset, RowError


def _rows(n):
    # multi-byte characters make byte offsets differ from character offsets
    return [[i, f"caption é {i}", f"ünï{i}"] for i in range(n)]


def test_rows_by_byte_offset_and_selected_cols(write_tsv):
    ds = FileDataset(write_tsv(_rows(4)), "2,0", slice_id=0, slice_count=1)
    assert len(ds) == ds.get_total_row_count() == 4
    assert ds[3] == ["ünï3", "3"] and ds[0] == ["ünï0", "0"] and ds[2] == ["ünï2", "2"]
    assert ds[1].row == 1 and ds[1].col_ids == [2, 0]
    typed = FileDataset(write_tsv(_rows(2)), "0,1", dtypes="int,str", slice_id=0, slice_count=1)
    assert typed[1] == [1, "caption é 1"]


@pytest.mark.parametrize("total,expected", [(6, [(0, 3), (3, 3)]), (5, [(0, 3), (3, 2)])])
def test_two_ranks_get_contiguous_slices(write_tsv, total, expected):
    path = write_tsv(_rows(total))
    slices = [FileDataset(path, "0", slice_id=r, slice_count=2) for r in range(2)]
    assert [(s.start_pos, len(s)) for s in slices] == expected
    seen = [int(s[i][0]) for s in slices for i in range(len(s))]
    assert seen == list(range(total))  # contiguous, disjoint, complete
    with pytest.raises(IndexError):
        slices[1][len(slices[1])]


def test_ranks_run_the_same_number_of_batches(make_task, b64_image):
    rows = [[i, 0, f"caption {i}", "", b64_image()] for i in range(5)]
    task, _ = make_task("caption", rows, selected_cols="0,4,2", patch_image_size=32)
    counts = []
    for rank in range(2):
        task.load_dataset("valid", slice_id=rank, slice_count=2)
        itr = task.get_batch_iterator(task.datasets["valid"], max_sentences=2, num_shards=2, shard_id=rank)
        batches = list(itr.next_epoch_itr(shuffle=False))
        counts.append(len(batches))
        ids = [i for b in batches if b for i in b["id"].tolist()]
        assert ids == (["0", "1", "2"] if rank == 0 else ["3", "4"])
        if rank == 1:
            assert batches[-1] == {}  # padding batch: rank 1 has one row fewer
    assert counts == [2, 2]


def test_slice_rows_by_index(write_tsv):
    ds = FileDataset(write_tsv(_rows(7)), "0", slice_id=1, slice_count=2)  # rows 4..6
    assert [ds[i][0] for i in range(len(ds))] == ["4", "5", "6"]
    with pytest.raises(IndexError):
        ds[3]


def test_cached_index_is_used(write_tsv):
    path = write_tsv(_rows(3))
    offsets = FileDataset(path, "0", slice_id=0, slice_count=1).lineid_to_offset.tolist()
    with open(path + ".index", "wb") as f:
        pickle.dump((3, offsets), f)
    assert FileDataset(path, "1", cached_index=True, slice_id=0, slice_count=1)[2] == ["caption é 2"]


def test_wrong_column_count_names_file_and_row(write_tsv):
    path = write_tsv(_rows(2) + [["2", "only two"]])
    ds = FileDataset(path, "0,2", slice_id=0, slice_count=1)
    with pytest.raises(RowError, match=r"data\.tsv: row 2 \(line 3\): has 2 columns, expected 3"):
        ds[2]
    with pytest.raises(ValueError, match="selected column"):
        FileDataset(path, "0,5", slice_id=0, slice_count=1)


def test_file_handles_are_per_process(make_task, b64_image):
    """Forked DataLoader workers reopen the file and read the right rows (no shared handle offsets)."""
    rows = [[i, 0, f"caption {i}", "", b64_image()] for i in range(9)]
    task, dataset = make_task("caption", rows, selected_cols="0,4,2", patch_image_size=32)
    dataset[0]  # open a handle in the parent before forking
    state = pickle.loads(pickle.dumps(dataset.dataset))
    assert state._reader is None

    def ids(workers):
        itr = task.get_batch_iterator(dataset, max_sentences=2, num_workers=workers)
        return [b["id"].tolist() for b in itr.next_epoch_itr(shuffle=False)]
    assert ids(2) == ids(0) == [["0", "1"], ["2", "3"], ["4", "5"], ["6", "7"], ["8"]]
    parent_handle = dataset.dataset._reader
    dataset.dataset._reader_pid = -1  # as seen from a forked worker: the handle belongs to another process
    assert dataset.dataset[3][0] == "3" and dataset.dataset._reader is not parent_handle


@pytest.mark.slow
def test_dataset_pickles_for_spawned_workers(make_task, b64_image):
    """spawn/forkserver workers receive the dataset by pickle (fairseq's BPE holds a module)."""
    _, dataset = make_task("caption", [[1, 0, "a red cat", "", b64_image()]], selected_cols="0,4,2",
                           patch_image_size=32)
    copied = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(copied[0]["target"], dataset[0]["target"]) and dataset.bpe.bpe.re is copied.bpe.bpe.re
