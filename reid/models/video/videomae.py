"""VideoMAE self-supervised pretraining (Tong et al., NeurIPS 2022).

The encoder is a :class:`~reid.models.video.transformer.VideoTransformer` with cube embedding
(``tubelet x patch x patch``, default 2 x 16 x 16), a fixed sinusoidal position table and joint
attention. Pretraining masks whole tubes - the same spatial positions in every time index -
at a high ratio (0.9), runs the encoder on the visible tokens only, and a light decoder predicts
the pixels of the masked cubes; targets are normalised per cube and channel.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reid.models.video.transformer import VideoTransformer
from reid.models.video.vit_blocks import Block, init_vit_weights, sincos_pos_embed


def tube_mask(batch: int, num_t: int, num_spatial: int, ratio: float,
              generator: torch.Generator | None = None, device: torch.device | str = "cpu"
              ) -> Tensor:
    """Tube masks: bool ``(batch, num_t * num_spatial)``, True = masked, time-major.

    Each sample masks the same ``round(ratio * num_spatial)`` spatial positions (drawn uniformly
    without replacement) in every one of its ``num_t`` time indices, so the masked fraction is
    exactly that count over ``num_spatial``.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    num_masked = int(round(ratio * num_spatial))
    if num_masked >= num_spatial:
        raise ValueError(f"mask ratio {ratio} masks all {num_spatial} spatial positions")
    scores = torch.rand(batch, num_spatial, generator=generator)
    order = scores.argsort(dim=1)
    spatial = torch.zeros(batch, num_spatial, dtype=torch.bool)
    spatial.scatter_(1, order[:, :num_masked], True)
    return spatial.repeat(1, num_t).to(device)


def patchify_clip(x: Tensor, tubelet: int, patch_size: int) -> Tensor:
    """Clip ``(B, C, T, H, W)`` -> cubes ``(B, N, tubelet * p * p, C)`` in token order."""
    b, c, t, h, w = x.shape
    p = patch_size
    cubes = x.reshape(b, c, t // tubelet, tubelet, h // p, p, w // p, p)
    cubes = cubes.permute(0, 2, 4, 6, 3, 5, 7, 1)
    return cubes.reshape(b, (t // tubelet) * (h // p) * (w // p), tubelet * p * p, c)


def cube_targets(x: Tensor, tubelet: int, patch_size: int, normalize: bool = True,
                 eps: float = 1e-6) -> Tensor:
    """Reconstruction targets ``(B, N, tubelet * p * p * C)``.

    With ``normalize`` every cube and channel is standardised over its ``tubelet * p * p`` pixels
    (mean 0, unbiased std 1, as in VideoMAE). Standardisation also removes any per-channel
    affine input normalisation, so normalised clips can be passed directly.
    """
    cubes = patchify_clip(x, tubelet, patch_size)
    if normalize:
        mean = cubes.mean(dim=2, keepdim=True)
        std = cubes.var(dim=2, unbiased=True, keepdim=True).sqrt()
        cubes = (cubes - mean) / (std + eps)
    return cubes.flatten(2)


class VideoMAEPretrainer(nn.Module):
    """Encoder + light decoder of VideoMAE; ``forward`` returns the masked reconstruction loss.

    Args:
        encoder: a ``VideoTransformer`` with ``attn_mode="joint"`` and no class token.
        decoder_dim, decoder_depth, decoder_heads: decoder size (VideoMAE uses 1/2 to 1/3 of
            the encoder width and 4 blocks).
        mask_ratio: tube-masking ratio.
        norm_targets: per-cube normalised pixel targets.
    """

    def __init__(self, encoder: VideoTransformer, decoder_dim: int = 192, decoder_depth: int = 4,
                 decoder_heads: int = 3, mask_ratio: float = 0.9,
                 norm_targets: bool = True) -> None:
        super().__init__()
        if encoder.attn_mode != "joint" or encoder.num_prefix:
            raise ValueError("VideoMAE needs a joint-attention encoder without class token")
        self.encoder = encoder
        self.mask_ratio = mask_ratio
        self.norm_targets = norm_targets
        embed = encoder.patch_embed
        self.tubelet, self.patch_size = embed.tubelet, embed.patch_size
        in_chans = embed.proj.in_channels
        nt, s = encoder.token_grid
        self.encoder_to_decoder = nn.Linear(encoder.out_dim, decoder_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.register_buffer("decoder_pos_embed", sincos_pos_embed(nt * s, decoder_dim),
                             persistent=False)
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_dim, decoder_heads) for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.decoder_head = nn.Linear(decoder_dim, self.tubelet * self.patch_size ** 2 * in_chans)
        for module in (self.encoder_to_decoder, self.decoder_blocks, self.decoder_norm,
                       self.decoder_head):
            init_vit_weights(module)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def random_mask(self, batch: int, generator: torch.Generator | None = None,
                    device: torch.device | str = "cpu") -> Tensor:
        nt, s = self.encoder.token_grid
        return tube_mask(batch, nt, s, self.mask_ratio, generator, device)

    def forward(self, x: Tensor, mask: Tensor | None = None,
                generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``x``: clip ``(B, C, T, H, W)``; ``mask``: bool ``(B, N)`` or None (tube mask drawn).

        Returns ``{"loss": scalar MSE over masked cubes, "pred": (B, N_masked, P),
        "target": (B, N_masked, P), "mask": (B, N)}`` with ``P = tubelet * p * p * C``.
        """
        b = x.shape[0]
        if mask is None:
            mask = self.random_mask(b, generator, x.device)
        visible = self.encoder.forward_tokens(x, mask)
        vis = self.encoder_to_decoder(visible)
        d = vis.shape[-1]
        pos = self.decoder_pos_embed.to(vis.dtype).expand(b, -1, -1)
        pos_vis = pos[~mask].reshape(b, -1, d)
        pos_mask = pos[mask].reshape(b, -1, d)
        num_masked = pos_mask.shape[1]
        seq = torch.cat([vis + pos_vis, self.mask_token + pos_mask], dim=1)
        for blk in self.decoder_blocks:
            seq = blk(seq)
        pred = self.decoder_head(self.decoder_norm(seq[:, -num_masked:]))
        with torch.no_grad():
            target = cube_targets(x, self.tubelet, self.patch_size, self.norm_targets)
            target = target[mask].reshape(b, num_masked, -1)
        loss = F.mse_loss(pred, target.to(pred.dtype))
        return {"loss": loss, "pred": pred, "target": target, "mask": mask}
