"""SpCL hybrid memory: source centroids, target instance features, unified contrastive loss."""
from reid.memory.hybrid import HybridMemory, build_hybrid_memory, class_centroids

__all__ = ["HybridMemory", "build_hybrid_memory", "class_centroids"]
