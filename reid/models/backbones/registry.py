"""The registry of image backbones (filled by the modules of this package on import)."""
from reid.utils.registry import Registry

BACKBONE_REGISTRY = Registry("backbone")
