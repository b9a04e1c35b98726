"""Memories of the clustering methods: SpCL's hybrid memory (source centroids, target
instances, unified contrastive loss) and Cluster Contrast's cluster memory."""
from reid.memory.cluster import ClusterMemory, cluster_contrast_loss, update_centroids
from reid.memory.hybrid import HybridMemory, class_centroids

__all__ = ["ClusterMemory", "HybridMemory", "class_centroids", "cluster_contrast_loss",
           "update_centroids"]
