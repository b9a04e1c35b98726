"""Camera-aware proxy contrastive loss (Wang et al., "Camera-aware Proxies for Unsupervised
Person Re-Identification", AAAI 2021, Sec. 3.2-3.3).

Each pseudo-label cluster is split by camera into *proxies* (one per (cluster, camera) pair), so
that a proxy holds images of one camera only. For an L2-normalised feature ``f`` of camera
``c`` whose proxy is ``p``, with proxy centroids ``k`` and temperature ``tau``:

* intra-camera loss (CAP Eq. 3): a softmax over the proxies of camera ``c`` only::

      L_intra = -log( exp(<f, k_p> / tau) / sum_{j: cam(j) = c} exp(<f, k_j> / tau) )

  (identities are only contrasted against the proxies of the same camera, so camera style is
  no shortcut);
* inter-camera loss (CAP Eq. 4): every proxy ``P`` of the sample's cluster, in every camera, is
  a positive, against the ``num_hard`` most similar proxies ``Q`` of other clusters::

      L_inter = -1/|P| sum_{p in P} log( exp(<f, k_p> / tau)
                                         / sum_{j in P u Q} exp(<f, k_j> / tau) )

  which pulls the cameras' views of one pseudo identity together.

  Optionally (``num_unseen_skip`` = s > 0), for every camera ``c'`` that may see the sample's
  identity (``c' != c``, in the sample's camera group) but holds no proxy of its cluster, the s
  proxies of ``c'`` most similar to ``f`` are left out of ``Q`` (neither positive nor
  negative): the clustering links few cross-camera views, so the sample's identity as seen by
  ``c'`` is usually a proxy of another cluster, and then among the hardest negatives the plain
  loss pushes away. (In the spirit of the online cross-camera proxy association of O2CAP,
  Wang et al., IEEE TIP 2022; here such proxies are only ignored, never made positives.)

The functions are pure (no memory, no model) so they can be checked against a direct formula.
"""
from __future__ import annotations

import torch


def camera_proxies(
    labels: torch.Tensor, camids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split pseudo-label clusters by camera.

    Args:
        labels: (N,) int pseudo labels, -1 for un-clustered samples; each un-clustered sample
            becomes a cluster of its own (one proxy, no other positive), as SpCL's outliers.
        camids: (N,) int camera ids.

    Returns:
        ``proxy`` (N,) int64 proxy id of every sample in ``[0, P)``, ``proxy_cluster`` (P,)
        int64 cluster id of every proxy in ``[0, C)`` (clusters renumbered, outliers last) and
        ``proxy_camera`` (P,) the camera id of every proxy.

    Example:
        >>> camera_proxies(torch.tensor([0, 0, 1, -1]), torch.tensor([5, 6, 5, 5]))
        (tensor([0, 1, 2, 3]), tensor([0, 0, 1, 2]), tensor([5, 6, 5, 5]))
    """
    labels = torch.as_tensor(labels).long()
    camids = torch.as_tensor(camids, device=labels.device).long()
    if labels.dim() != 1 or camids.shape != labels.shape:
        raise ValueError(f"labels and camids must be (N,) tensors of one shape, got "
                         f"{tuple(labels.shape)} and {tuple(camids.shape)}")
    clustered = labels >= 0
    cluster = torch.empty_like(labels)
    _, dense = torch.unique(labels[clustered], return_inverse=True)
    cluster[clustered] = dense
    num_clusters = int(dense.max()) + 1 if dense.numel() else 0
    num_out = int((~clustered).sum())
    cluster[~clustered] = torch.arange(num_out, device=labels.device) + num_clusters
    _, cam_dense = torch.unique(camids, return_inverse=True)
    num_cams = int(cam_dense.max()) + 1 if cam_dense.numel() else 1
    keys, proxy = torch.unique(cluster * num_cams + cam_dense, return_inverse=True)
    proxy_cluster = keys // num_cams
    first = torch.full((keys.numel(),), labels.numel(), dtype=torch.long, device=labels.device)
    first.scatter_reduce_(0, proxy, torch.arange(labels.numel(), device=labels.device), "amin")
    return proxy, proxy_cluster, camids[first]


def proxy_centroids(features: torch.Tensor, proxy: torch.Tensor, num_proxies: int) -> torch.Tensor:
    """(P, D) L2-normalised mean of the (N, D) ``features`` of every proxy (all non-empty)."""
    sums = torch.zeros(num_proxies, features.shape[1], dtype=features.dtype,
                       device=features.device).index_add_(0, proxy, features)
    return torch.nn.functional.normalize(sums, dim=1)


def camera_proxy_losses(
    feats: torch.Tensor,
    proxies: torch.Tensor,
    target_proxy: torch.Tensor,
    proxy_cluster: torch.Tensor,
    proxy_camera: torch.Tensor,
    temperature: float = 0.07,
    num_hard: int = 50,
    num_unseen_skip: int = 0,
    proxy_group: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Intra- and inter-camera proxy losses of a batch (see the module docstring), batch means.

    Args:
        feats: (B, D) L2-normalised features.
        proxies: (P, D) proxy centroids (gradients flow into them if they require grad).
        target_proxy: (B,) int64 proxy of every sample; its camera is the sample's camera.
        proxy_cluster: (P,) int64 cluster of every proxy.
        proxy_camera: (P,) int camera of every proxy.
        temperature: tau (> 0); CAP uses 0.07.
        num_hard: number of hardest negative proxies (other clusters, any camera) in the
            inter-camera softmax; fewer when fewer exist.
        num_unseen_skip: s >= 0, proxies left out of the negatives per camera of the sample's
            group that holds no proxy of its cluster (0: CAP's plain inter-camera loss).
        proxy_group: (P,) int camera group of every proxy's camera (``None``: one group, every
            camera may see every identity); only used when ``num_unseen_skip > 0``.

    Returns:
        ``(intra, inter)``, two 0-dim tensors.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if feats.dim() != 2 or proxies.dim() != 2 or feats.shape[1] != proxies.shape[1]:
        raise ValueError(f"feats (B, D) and proxies (P, D) expected, got {tuple(feats.shape)} "
                         f"and {tuple(proxies.shape)}")
    num = proxies.shape[0]
    if proxy_cluster.shape != (num,) or proxy_camera.shape != (num,):
        raise ValueError("proxy_cluster and proxy_camera must have one entry per proxy")
    if target_proxy.shape != (feats.shape[0],):
        raise ValueError(f"target_proxy must have shape ({feats.shape[0]},)")
    if num_unseen_skip < 0:
        raise ValueError(f"num_unseen_skip must be >= 0, got {num_unseen_skip}")
    if proxy_group is not None and proxy_group.shape != (num,):
        raise ValueError("proxy_group must have one entry per proxy")
    logits = feats @ proxies.t() / temperature
    neg_inf = torch.finfo(logits.dtype).min
    same_cam = proxy_camera[None, :] == proxy_camera[target_proxy][:, None]
    intra = torch.nn.functional.cross_entropy(logits.masked_fill(~same_cam, neg_inf), target_proxy)
    positive = proxy_cluster[None, :] == proxy_cluster[target_proxy][:, None]
    skipped = (_unseen_camera_skips(logits.detach(), target_proxy, proxy_cluster, proxy_camera,
                                    proxy_group, int(num_unseen_skip))
               if num_unseen_skip else torch.zeros_like(positive))
    k = min(int(num_hard), num - 1)
    kept = positive.clone()
    if k > 0:
        hard = logits.detach().masked_fill(positive | skipped, neg_inf).topk(k, dim=1).indices
        kept.scatter_(1, hard, True)  # with fewer than k negatives, extra picks are masked ones
        kept &= ~skipped
    log_prob = logits - torch.logsumexp(logits.masked_fill(~kept, neg_inf), dim=1, keepdim=True)
    inter = -(log_prob * positive).sum(1) / positive.sum(1)
    return intra, inter.mean()


def _unseen_camera_skips(logits: torch.Tensor, target_proxy: torch.Tensor,
                         proxy_cluster: torch.Tensor, proxy_camera: torch.Tensor,
                         proxy_group: torch.Tensor | None, skip: int) -> torch.Tensor:
    """(B, P) bool: the ``skip`` most similar proxies (by ``logits`` (B, P)) of every camera of
    the sample's group that is not the sample's camera and holds no proxy of its cluster.
    One pass per camera (a handful), none per sample."""
    cams, cam_idx = torch.unique(proxy_camera, return_inverse=True)
    num_clusters = int(proxy_cluster.max()) + 1
    has = torch.zeros(num_clusters, cams.numel(), dtype=torch.bool, device=logits.device)
    has[proxy_cluster, cam_idx] = True
    own = target_proxy
    group = proxy_group if proxy_group is not None else torch.zeros_like(proxy_camera)
    skipped = torch.zeros_like(logits, dtype=torch.bool)
    neg_inf = torch.finfo(logits.dtype).min
    for c in range(cams.numel()):
        in_cam = cam_idx == c
        count = min(skip, int(in_cam.sum()))
        first = int(in_cam.nonzero()[0])
        rows = ((cam_idx[own] != c) & (group[own] == group[first])
                & ~has[proxy_cluster[own], c]).nonzero().squeeze(1)
        if count == 0 or rows.numel() == 0:
            continue
        top = logits[rows].masked_fill(~in_cam[None, :], neg_inf).topk(count, dim=1).indices
        skipped[rows[:, None], top] = True
    return skipped
