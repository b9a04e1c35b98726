"""The registry of dataset parsers: ``name -> callable(root, **kwargs) -> ReIDDataset``."""
from __future__ import annotations

from reid.utils.registry import Registry

DATASET_REGISTRY = Registry("dataset")
