"""Collating samples into batches, in shared memory inside DataLoader workers."""
from __future__ import annotations

import numpy as np
import torch


def pad_batch(values: list[torch.Tensor], pad_idx, left_pad: bool = False) -> torch.Tensor:
    """Stack 1-D (or 2-D, padded along the first dim) tensors into a :func:`batch_tensor` filled with ``pad_idx``.

    fairseq's ``collate_tokens`` takes 1-D tensors only and allocates private memory; the datasets also pad 2-D
    boolean masks (with ``bool(pad_idx)``: True for fairseq's pad 1, as the original).
    """
    if values[0].dim() not in (1, 2):
        raise ValueError(f"pad_batch takes 1-D or 2-D tensors, got {values[0].dim()}-D")
    size = max(v.size(0) for v in values)
    res = batch_tensor((len(values), size, *values[0].shape[1:]), values[0].dtype).fill_(pad_idx)
    for i, v in enumerate(values):
        if left_pad:
            res[i, size - len(v):] = v
        else:
            res[i, : len(v)] = v
    return res


def batch_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU tensor for a collated batch; in shared memory inside a DataLoader worker, so the
    batch reaches the main process without the extra copy pickling would make (as torch's default collate)."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    storage = torch.UntypedStorage._new_shared(int(np.prod(shape)) * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage).view(shape)


def stack_batch(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack(tensors)`` into a :func:`batch_tensor`."""
    return torch.stack(tensors, out=batch_tensor((len(tensors), *tensors[0].shape), tensors[0].dtype))
