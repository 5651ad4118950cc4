"""``--skip-bad-rows`` for a fairseq ``Trainer``: skipped-row totals, and no-op updates for batches without a
usable row."""
import collections
import logging

import torch
import torch.distributed as dist
from fairseq.distributed import utils as distributed_utils

from data.file_dataset import take_skipped

logger = logging.getLogger(__name__)


class SkipBadRowsMixin:
    """For a fairseq ``Trainer``: skipped-row totals and no-op updates for batches without a usable row.

    A dataset returns a :class:`SkippedRow` for a row it cannot use; its collater leaves the row out and lists it
    under ``batch["skipped_rows"]``, so the count is right however many DataLoader workers read the rows and
    however often a row is read (fairseq reads the first batch twice). :class:`SkipBadRowsMixin` takes the list
    out of every batch before the model sees it, logs the totals per epoch and file, and turns a batch whose rows
    were all skipped into a no-op on every rank.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._skipped_rows = collections.defaultdict(set)  # (split, path) -> rows skipped since the last report
        self._dummy_source = None  # the dataset of the latest iterator, to find a usable dummy batch in

    def _take_skipped(self, sample, split: str):
        sample, skipped = take_skipped(sample)
        for row in skipped:
            self._skipped_rows[(split, row.path)].add(row.row)
        return sample

    def _skip_bad_rows(self) -> bool:
        return bool(getattr(getattr(self.task, "cfg", None), "skip_bad_rows", False))

    def _rows_on_any_rank(self, samples: list) -> bool:
        count = torch.tensor([sum(1 for s in samples if s)], dtype=torch.long, device=self.device)
        if self.data_parallel_world_size > 1:
            distributed_utils.all_reduce(count, group=self.data_parallel_process_group)
        return count.item() > 0

    def reset_dummy_batch(self, batch):
        # the batch fairseq substitutes for an empty one needs real rows: keep the previous one rather than a
        # first batch whose rows were all skipped
        batch, _ = take_skipped(batch)
        if batch or self._dummy_batch is None:
            super().reset_dummy_batch(batch)

    def _ensure_dummy_batch(self, samples: list) -> None:
        # fairseq private: Trainer._dummy_batch, "DUMMY" until its first batch (the stand-in for an empty batch)
        if all(samples) or (self._dummy_batch and self._dummy_batch != "DUMMY"):
            return
        dataset = self._dummy_source
        for index in range(len(dataset) if dataset is not None else 0):
            batch, _ = take_skipped(dataset.collater([dataset[index]]))
            if batch:
                self._dummy_batch = batch
                return
        where = getattr(getattr(dataset, "dataset", None), "file_path", "the data")
        raise ValueError(f"--skip-bad-rows: every row of {where} read by this process is bad")

    def get_train_iterator(self, *args, **kwargs):
        itr = super().get_train_iterator(*args, **kwargs)
        self._dummy_source = itr.dataset
        return itr

    def get_valid_iterator(self, *args, **kwargs):
        itr = super().get_valid_iterator(*args, **kwargs)
        self._dummy_source = itr.dataset
        return itr

    def train_step(self, samples, raise_oom=False):
        samples = [self._take_skipped(s, "train") for s in samples]
        if self._skip_bad_rows():
            if not self._rows_on_any_rank(samples):
                logger.warning("no usable row in this update's batches on any rank (--skip-bad-rows): no update")
                return None
            if self.data_parallel_world_size == 1:
                samples = [s for s in samples if s]  # nothing to keep in step with
            self._ensure_dummy_batch(samples)
        return super().train_step(samples, raise_oom)

    def valid_step(self, sample, raise_oom=False):
        sample = self._take_skipped(sample, "valid")
        if self._skip_bad_rows():
            if not self._rows_on_any_rank([sample]):
                return None
            self._ensure_dummy_batch([sample])
        return super().valid_step(sample, raise_oom)

    def log_skipped_rows(self, split: str, when: str) -> int:
        """Log (and forget) how many rows of ``split`` all ranks skipped since the last call, per file."""
        if not self._skip_bad_rows():
            return 0
        rows = {path: sorted(r) for (s, path), r in self._skipped_rows.items() if s == split}
        for key in [key for key in self._skipped_rows if key[0] == split]:
            del self._skipped_rows[key]
        if self.data_parallel_world_size > 1:
            # a union, not a sum: a row read by two ranks (a slice padded to even length) counts once
            # (fairseq's all_gather_list stages through a CUDA buffer: it fails on CPU ranks)
            parts = [None] * self.data_parallel_world_size
            dist.all_gather_object(parts, rows, group=self.data_parallel_process_group)
            merged = collections.defaultdict(set)
            for part in parts:
                for path, r in part.items():
                    merged[path].update(r)
            rows = merged
        counts = {path: len(r) for path, r in rows.items()}
        total = sum(counts.values())
        if total and self.is_data_parallel_master:  # once, not once per rank
            per_file = ", ".join(f"{path}: {count}" for path, count in sorted(counts.items()))
            logger.warning("%s: skipped %d bad row(s) (--skip-bad-rows): %s", when, total, per_file)
        return total
