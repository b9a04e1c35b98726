"""unreid: unsupervised and domain-adaptive object re-identification."""
from reid.version import __version__

__all__ = ["__version__"]
