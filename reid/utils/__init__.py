"""Small shared utilities (registries, logging, checkpoints, seeding)."""
from reid.utils.registry import Registry

__all__ = ["Registry"]
