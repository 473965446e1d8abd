"""Data: reading labelled text, built-in datasets, splits and batching."""

from .batching import EncodedDataset, batch_of, bucketed_batches, collate, sorted_batches
from .builtin import BUILTINS, DownloadError, default_data_dir, fetch, load_builtin
from .datasets import (
    Columns,
    DataError,
    TextDataset,
    check_labels_known,
    encode_labels,
    iter_texts,
    read_dataset,
    sort_labels,
    stratified_split,
)

__all__ = [
    "BUILTINS",
    "Columns",
    "DataError",
    "DownloadError",
    "EncodedDataset",
    "TextDataset",
    "batch_of",
    "bucketed_batches",
    "check_labels_known",
    "collate",
    "default_data_dir",
    "encode_labels",
    "fetch",
    "iter_texts",
    "load_builtin",
    "read_dataset",
    "sort_labels",
    "sorted_batches",
    "stratified_split",
]
