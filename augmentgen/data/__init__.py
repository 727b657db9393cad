"""Dataset sources: idx files, Fashion-MNIST, scikit-learn digits, image folders, WebDataset tars; subsets and splits."""

from augmentgen.data.idx import read_idx, write_idx
from augmentgen.data.sources import (
    FASHION_MNIST_CLASSES,
    ArrayDataset,
    conform,
    load_digits,
    load_fashion_mnist,
    load_image_folder,
    subset_per_class,
    train_val_split,
)
from augmentgen.data.webdataset import load_webdataset, read_webdataset

__all__ = [
    "FASHION_MNIST_CLASSES",
    "ArrayDataset",
    "conform",
    "load_digits",
    "load_fashion_mnist",
    "load_image_folder",
    "load_webdataset",
    "read_idx",
    "read_webdataset",
    "subset_per_class",
    "train_val_split",
    "write_idx",
]
