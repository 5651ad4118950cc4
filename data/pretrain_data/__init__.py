"""Pretraining data: the mixed-task ``UnifyDataset`` and its text/box noising helpers."""
