"""Datasets for real training: NB201 splits, sources (embedded / npz / official archives),
download with checksum verification, and device-resident batched augmentation.

``load_dataset("cifar10-valid")`` needs nothing: it uses the 5,000 real CIFAR-10 images
shipped in this package. See :mod:`harness.data.datasets` for the NB201 split semantics.
"""
from harness.data.augment import batches, steps_per_epoch
from harness.data.datasets import DATASETS, Dataset, Split, load_dataset
from harness.data.download import download

__all__ = ["DATASETS", "Dataset", "Split", "batches", "download", "load_dataset", "steps_per_epoch"]
