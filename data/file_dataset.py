"""Byte-offset reader for the TSV files OFA trains on, sliced contiguously across distributed ranks."""
from __future__ import annotations

import logging
import os
from typing import NamedTuple

import numpy as np
import torch

from utils.safe_pickle import load_pickle

logger = logging.getLogger(__name__)


def clean_text(text: str) -> str:
    """One line without tabs: fields cannot hold the separators of the TSV."""
    return " ".join(str(text).split())


# ---- --skip-bad-rows: a SkippedRow travels with its batch and the trainer counts it (see training.bad_rows)

SKIPPED_ROWS = "skipped_rows"


class SkippedRow(NamedTuple):
    """A row left out under ``--skip-bad-rows`` (``row`` is the 0-based line of ``path``)."""

    path: str
    row: int


def split_skipped(samples: list) -> tuple[list, list[SkippedRow]]:
    """(usable samples, skipped rows) of a list of dataset items."""
    skipped = [s for s in samples if isinstance(s, SkippedRow)]
    return [s for s in samples if s is not None and not isinstance(s, SkippedRow)], skipped


def with_skipped(batch, skipped: list[SkippedRow]):
    """``batch`` listing ``skipped`` under :data:`SKIPPED_ROWS` (a batch that is a list carries it in its first
    element); a batch of skipped rows only is ``{"skipped_rows": [...]}``."""
    if not skipped:
        return batch
    if not batch:
        return {SKIPPED_ROWS: skipped}
    (batch[0] if isinstance(batch, list) else batch)[SKIPPED_ROWS] = skipped
    return batch


def take_skipped(batch) -> tuple[object, list[SkippedRow]]:
    """(batch without the skipped-row list, that list)."""
    head = batch[0] if isinstance(batch, list) and batch else batch
    if not isinstance(head, dict) or SKIPPED_ROWS not in head:
        return batch, []
    return batch, head.pop(SKIPPED_ROWS)  # a batch of skipped rows only is now {}


class RowError(ValueError):
    """A TSV row that cannot be used; the message names the file, the row and the column."""

    def __init__(self, path: str, row: int, column: int | None, reason: str):
        self.path, self.row, self.column, self.reason = path, row, column, reason
        where = f"{path}: row {row} (line {row + 1})"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {reason}")


class TsvRow(list):
    """The selected columns of one row, able to say where a field came from."""

    def __init__(self, values: list[str], path: str, row: int, col_ids: list[int]):
        super().__init__(values)
        self.path, self.row, self.col_ids = path, row, col_ids

    def error(self, field: int, reason: str) -> RowError:
        """A :class:`RowError` for the ``field``-th selected column."""
        return RowError(self.path, self.row, self.col_ids[field], reason)


def _distributed_slice() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _line_offsets(path: str, chunk_size: int = 1 << 24) -> np.ndarray:
    """Byte offset of every line start, found chunk-wise with numpy (no per-line Python objects: rows holding
    images are long, files can be ~100 GB). Counts lines exactly as iterating over the file does."""
    starts, position = [np.zeros(1, dtype=np.int64)], 0
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            starts.append(np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == ord("\n")) + (position + 1))
            position += len(chunk)
    offsets = np.concatenate(starts)
    return offsets[offsets < position]  # a final newline starts no row (and an empty file has none)


class FileDataset:
    """Rows of a TSV file read by byte offset; rank ``slice_id`` of ``slice_count`` sees one contiguous slice.

    The file is scanned once for line offsets (or they are loaded from ``<file>.index``, a pickle of
    ``(total_row_count, offsets)`` as the original writes); rows are read on demand, so files larger than
    memory work. File handles are opened lazily per process, so forked DataLoader workers never share one.
    """

    def __init__(
        self,
        file_path: str,
        selected_col_ids: str | None = None,
        dtypes: str | None = None,
        separator: str = "\t",
        cached_index: bool = False,
        slice_id: int | None = None,
        slice_count: int | None = None,
    ):
        if not os.path.isfile(file_path):
            raise FileNotFoundError(f"data file not found: {file_path}")
        self.file_path = file_path
        self.separator = separator
        default_slice = _distributed_slice()
        self.slice_id = default_slice[0] if slice_id is None else slice_id
        self.slice_count = default_slice[1] if slice_count is None else slice_count
        if not 0 <= self.slice_id < self.slice_count:
            raise ValueError(f"slice_id {self.slice_id} out of range for slice_count {self.slice_count}")

        self._reader = None
        self._reader_pid = None
        self._init_seek_index(cached_index)
        first_row = self._read_line(0) if self.total_row_count else ""
        if self.total_row_count and not first_row.strip():
            raise RowError(file_path, 0, None, "is empty, but the first row sets the number of columns")
        self.num_columns = len(first_row.split(separator))
        if selected_col_ids is None:
            self.selected_col_ids = list(range(self.num_columns))
        else:
            try:
                self.selected_col_ids = [int(col_id) for col_id in str(selected_col_ids).split(",")]
            except ValueError:
                raise ValueError(f"--selected-cols {selected_col_ids!r}: expected comma-separated column numbers "
                                 f"(reading {file_path})") from None
        bad = [c for c in self.selected_col_ids if not 0 <= c < self.num_columns]
        if bad and self.total_row_count:
            raise ValueError(
                f"{file_path}: selected column(s) {bad} do not exist; rows have {self.num_columns} columns "
                f"(selected_cols={selected_col_ids})"
            )
        # dtypes are names of builtin converters, as the original's eval'ed strings ("str,int,float")
        converters = {"str": str, "int": int, "float": float}
        self.dtypes = [str] * len(self.selected_col_ids) if dtypes is None else [converters[d] for d in dtypes.split(",")]
        if len(self.dtypes) != len(self.selected_col_ids):
            raise ValueError(f"{len(self.dtypes)} dtypes given for {len(self.selected_col_ids)} selected columns")
        logger.info(
            "file %s slice_id %d row count %d total row count %d",
            file_path, self.slice_id, self.row_count, self.total_row_count,
        )

    def _init_seek_index(self, cached_index: bool) -> None:
        if cached_index:
            cache_path = f"{self.file_path}.index"
            if not os.path.isfile(cache_path):
                raise FileNotFoundError(f"cached index not found: {cache_path}")
            self.total_row_count, offsets = load_pickle(cache_path, "cached row offsets")
            self.lineid_to_offset = np.asarray(offsets, dtype=np.int64)
        else:
            self.lineid_to_offset = _line_offsets(self.file_path)
            self.total_row_count = len(self.lineid_to_offset)
        self._compute_start_pos_and_row_count()

    def _compute_start_pos_and_row_count(self) -> None:
        # the first (total % slice_count) slices get one extra row, as the original; OFATask.get_batch_iterator
        # pads the shorter slices with an empty batch so every rank runs the same number of steps
        self.row_count, remainder = divmod(self.total_row_count, self.slice_count)
        if self.slice_id < remainder:
            self.row_count += 1
            self.start_pos = self.row_count * self.slice_id
        else:
            self.start_pos = self.row_count * self.slice_id + remainder

    def _file(self):
        if self._reader is None or self._reader_pid != os.getpid():
            self._reader = open(self.file_path, "rb")
            self._reader_pid = os.getpid()
        return self._reader

    def _read_line(self, line_id: int) -> str:
        reader = self._file()
        reader.seek(int(self.lineid_to_offset[line_id]))
        raw = reader.readline()
        try:
            return raw.decode("utf-8").rstrip("\n")
        except UnicodeDecodeError as e:
            raise RowError(self.file_path, line_id, None, f"not valid UTF-8 ({e})") from None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_reader"], state["_reader_pid"] = None, None
        return state

    def __del__(self):
        if getattr(self, "_reader", None) is not None and self._reader_pid == os.getpid():
            self._reader.close()

    def __len__(self) -> int:
        return self.row_count

    def get_total_row_count(self) -> int:
        return self.total_row_count

    def __getitem__(self, index: int) -> TsvRow:
        if not 0 <= index < self.row_count:
            raise IndexError(f"row {index} outside slice of {self.row_count} rows ({self.file_path})")
        line_id = self.start_pos + index
        columns = self._read_line(line_id).split(self.separator)
        if len(columns) != self.num_columns:
            raise RowError(
                self.file_path, line_id, None,
                f"has {len(columns)} columns, expected {self.num_columns} (as row 0)",
            )
        values = []
        for col_id, dtype in zip(self.selected_col_ids, self.dtypes):
            try:
                values.append(dtype(columns[col_id]))
            except ValueError as e:
                raise RowError(self.file_path, line_id, col_id, f"cannot convert to {dtype.__name__}: {e}") from None
        return TsvRow(values, self.file_path, line_id, self.selected_col_ids)
