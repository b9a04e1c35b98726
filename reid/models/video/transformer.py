"""Video transformers: TimeSformer, ViViT models 1-4 and the VideoMAE encoder.

All of them embed a clip ``(B, C, T, H, W)`` into tubelet tokens (a ``Conv3d`` with kernel and
stride ``(tubelet, patch, patch)``; ``tubelet=1`` is the per-frame patch embedding of
TimeSformer), add position embeddings and run shared :class:`~reid.models.video.vit_blocks.Block`
layers; they differ only in the block's attention mode, the class token, the position table and
the pooling:

============  ===============  ===========  ====================  ======
model         attention        class token  position table        pool
============  ===============  ===========  ====================  ======
TimeSformer   divided (t, s)   yes          spatial + temporal    token
ViViT 1       joint            yes          joint (T*S)           token
ViViT 3       divided (s, t)   no           joint (T*S)           avg
ViViT 4       factorised_dot   no           joint (T*S)           avg
VideoMAE      joint            no           fixed sinusoidal      avg
============  ===============  ===========  ====================  ======

ViViT model 2 (factorised encoder) is :class:`FactorisedEncoderViViT`. Joint position tables are
initialised by repeating one spatial table over time (Arnab et al., ICCV 2021, Sec. 3.4); the
TimeSformer temporal table starts at zero (Bertasius et al., ICML 2021).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from reid.models.video.vit_blocks import Block, init_vit_weights, sincos_pos_embed

POS_TYPES = ("joint", "separate", "sincos")


class TubeletEmbed(nn.Module):
    """Non-overlapping tubelet embedding ``(B, C, T, H, W) -> (B, T/t * H/p * W/p, D)``.

    Tokens are time-major (all spatial positions of tubelet 0 first), row-major in space.
    """

    def __init__(self, num_frames: int, img_size: tuple[int, int], patch_size: int,
                 tubelet: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        h, w = img_size
        if h % patch_size or w % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        if num_frames % tubelet:
            raise ValueError(f"num_frames {num_frames} is not a multiple of tubelet {tubelet}")
        self.num_frames, self.img_size = num_frames, (h, w)
        self.patch_size, self.tubelet = patch_size, tubelet
        self.grid = (num_frames // tubelet, h // patch_size, w // patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, (tubelet, patch_size, patch_size),
                              stride=(tubelet, patch_size, patch_size))

    @property
    def num_spatial(self) -> int:
        return self.grid[1] * self.grid[2]

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 5 or tuple(x.shape[2:]) != (self.num_frames, *self.img_size):
            raise ValueError(f"expected a clip (B, C, {self.num_frames}, {self.img_size[0]}, "
                             f"{self.img_size[1]}), got {tuple(x.shape)}")
        return self.proj(x).flatten(2).transpose(1, 2)


class VideoTransformer(nn.Module):
    """Tubelet-token video transformer: ``(B, C, T, H, W) -> (B, D)``.

    Args:
        num_frames: clip length T (a multiple of ``tubelet``).
        img_size: (height, width) in pixels.
        patch_size: spatial patch side, pixels.
        tubelet: frames per token.
        in_chans, embed_dim, depth, num_heads, mlp_ratio, qkv_bias: transformer size.
        drop_path: stochastic depth, growing linearly to this rate over the blocks.
        attn_mode: ``"joint"``, ``"divided"`` or ``"factorised_dot"`` (see ``Block``).
        divided_order: order of temporal / spatial attention in ``"divided"`` mode.
        class_token: prepend a class token.
        pos_type: ``"joint"`` (learned ``T*S`` table initialised by temporal repetition),
            ``"separate"`` (learned spatial table + zero-initialised temporal table) or
            ``"sincos"`` (fixed sinusoidal table over the ``T*S`` tokens, VideoMAE).
        global_pool: ``"token"`` (class token) or ``"avg"`` (mean of the tubelet tokens).
    """

    def __init__(self, num_frames: int = 8, img_size: tuple[int, int] = (256, 128),
                 patch_size: int = 16, tubelet: int = 2, in_chans: int = 3,
                 embed_dim: int = 384, depth: int = 12, num_heads: int = 6,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_path: float = 0.0,
                 attn_mode: str = "joint", divided_order: tuple[str, str] = ("temporal", "spatial"),
                 class_token: bool = True, pos_type: str = "joint",
                 global_pool: str = "token") -> None:
        super().__init__()
        if pos_type not in POS_TYPES:
            raise ValueError(f"unknown pos_type {pos_type!r}; expected one of {POS_TYPES}")
        if global_pool not in ("token", "avg") or (global_pool == "token" and not class_token):
            raise ValueError(f"global_pool={global_pool!r} with class_token={class_token}")
        if attn_mode == "factorised_dot" and class_token:
            raise ValueError("factorised dot-product attention (ViViT 4) has no class token")
        self.patch_embed = TubeletEmbed(num_frames, tuple(img_size), patch_size, tubelet,
                                        in_chans, embed_dim)
        self.num_prefix = int(class_token)
        self.attn_mode = attn_mode
        self.pos_type = pos_type
        self.global_pool = global_pool
        self.out_dim = embed_dim
        nt, s = self.patch_embed.grid[0], self.patch_embed.num_spatial
        self.token_grid = (nt, s)
        if class_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        if pos_type == "sincos":
            self.register_buffer("pos_embed", sincos_pos_embed(nt * s, embed_dim),
                                 persistent=False)
            if class_token:
                self.cls_pos = nn.Parameter(torch.zeros(1, 1, embed_dim))
        elif pos_type == "separate":
            self.pos_embed = nn.Parameter(torch.zeros(1, self.num_prefix + s, embed_dim))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
            self.time_embed = nn.Parameter(torch.zeros(1, nt, embed_dim))
        else:
            spatial = torch.empty(1, self.num_prefix + s, embed_dim)
            nn.init.trunc_normal_(spatial, std=0.02)
            self.pos_embed = nn.Parameter(repeat_pos_embed(spatial, nt, self.num_prefix))
        rates = torch.linspace(0, drop_path, depth).tolist()
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, rates[i], attn_mode=attn_mode,
                  divided_order=divided_order) for i in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        init_vit_weights(self)

    @property
    def num_tokens(self) -> int:
        """Tokens entering the first block without masking: prefix + T/t * S."""
        return self.num_prefix + self.token_grid[0] * self.token_grid[1]

    def embed(self, x: Tensor) -> Tensor:
        """Clip -> position-embedded tokens ``(B, prefix + T/t * S, D)``."""
        tokens = self.patch_embed(x)
        b, n, d = tokens.shape
        nt, s = self.token_grid
        p = self.num_prefix
        if self.pos_type == "separate":
            tokens = tokens.view(b, nt, s, d) + self.pos_embed[:, None, p:]
            tokens = (tokens + self.time_embed[:, :, None]).reshape(b, n, d)
            cls_pos = self.pos_embed[:, :p]
        elif self.pos_type == "sincos":
            tokens = tokens + self.pos_embed.to(tokens.dtype)
            cls_pos = self.cls_pos if p else None
        else:
            tokens = tokens + self.pos_embed[:, p:]
            cls_pos = self.pos_embed[:, :p]
        if p:
            tokens = torch.cat([(self.cls_token + cls_pos).expand(b, -1, -1), tokens], dim=1)
        return tokens

    def forward_tokens(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Clip ``(B, C, T, H, W)`` -> normalised output tokens ``(B, prefix + N_vis, D)``.

        ``mask``: optional bool ``(B, T/t * S)``, True = dropped (VideoMAE); every sample must
        drop the same number of tokens, and only ``"joint"`` attention supports masking.
        """
        tokens = self.embed(x)
        grid = self.token_grid
        if mask is not None:
            if self.attn_mode != "joint":
                raise ValueError(f"token masking needs joint attention, not {self.attn_mode!r}")
            tokens = keep_visible(tokens, mask, self.num_prefix)
            grid = None
        for blk in self.blocks:
            tokens = blk(tokens, grid)
        return self.norm(tokens)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.forward_tokens(x)
        if self.global_pool == "token":
            return tokens[:, 0]
        return tokens[:, self.num_prefix:].mean(dim=1)


def repeat_pos_embed(spatial: Tensor, num_t: int, num_prefix: int = 0) -> Tensor:
    """``(1, p + S, D)`` spatial table -> ``(1, p + num_t * S, D)`` by repeating it over time."""
    prefix, grid = spatial[:, :num_prefix], spatial[:, num_prefix:]
    return torch.cat([prefix, grid.repeat(1, num_t, 1)], dim=1)


def keep_visible(tokens: Tensor, mask: Tensor, num_prefix: int = 0) -> Tensor:
    """Drop masked tokens: ``(B, p + N, D)``, bool ``(B, N)`` -> ``(B, p + N_visible, D)``."""
    b, n, d = tokens.shape
    if mask.shape != (b, n - num_prefix) or mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool {(b, n - num_prefix)}, got {mask.dtype} "
                         f"{tuple(mask.shape)}")
    counts = (~mask).sum(dim=1)
    if not bool((counts == counts[0]).all()):
        raise ValueError("every sample must keep the same number of visible tokens")
    visible = tokens[:, num_prefix:][~mask].reshape(b, -1, d)
    return torch.cat([tokens[:, :num_prefix], visible], dim=1)


class FactorisedEncoderViViT(nn.Module):
    """ViViT model 2 (Arnab et al., ICCV 2021, Sec. 3.3): factorised encoder.

    A spatial transformer (``depth`` blocks, class token per tubelet time index) encodes each
    time index independently; its class-token outputs ``(B, T/t, D)`` go, with a temporal class
    token and a learned temporal position table, through a temporal transformer
    (``temporal_depth`` blocks) whose class token is the clip embedding ``(B, D)``.
    The spatial part uses image-ViT key names so a 2-D checkpoint loads into it directly.
    """

    def __init__(self, num_frames: int = 8, img_size: tuple[int, int] = (256, 128),
                 patch_size: int = 16, tubelet: int = 2, in_chans: int = 3,
                 embed_dim: int = 384, depth: int = 12, temporal_depth: int = 4,
                 num_heads: int = 6, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.patch_embed = TubeletEmbed(num_frames, tuple(img_size), patch_size, tubelet,
                                        in_chans, embed_dim)
        nt, s = self.patch_embed.grid[0], self.patch_embed.num_spatial
        self.token_grid = (nt, s)
        self.num_prefix = 1
        self.out_dim = embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + s, embed_dim))
        self.temporal_cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.temporal_pos_embed = nn.Parameter(torch.zeros(1, 1 + nt, embed_dim))
        for p in (self.cls_token, self.pos_embed, self.temporal_cls_token,
                  self.temporal_pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        rates = torch.linspace(0, drop_path, depth + temporal_depth).tolist()
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, rates[i]) for i in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.temporal_blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, rates[depth + i])
            for i in range(temporal_depth))
        self.temporal_norm = nn.LayerNorm(embed_dim, eps=1e-6)
        init_vit_weights(self)

    @property
    def num_tokens(self) -> int:
        """Tokens of one spatial-encoder sequence (1 + S) times the number of time indices."""
        return self.token_grid[0] * (1 + self.token_grid[1])

    def forward_frames(self, x: Tensor) -> Tensor:
        """Spatial encoder: clip -> per-time class tokens ``(B, T/t, D)``."""
        tokens = self.patch_embed(x)
        b, _, d = tokens.shape
        nt, s = self.token_grid
        seq = tokens.reshape(b * nt, s, d) + self.pos_embed[:, 1:]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(b * nt, -1, -1)
        seq = torch.cat([cls, seq], dim=1)
        for blk in self.blocks:
            seq = blk(seq)
        return self.norm(seq)[:, 0].reshape(b, nt, d)

    def forward(self, x: Tensor) -> Tensor:
        frames = self.forward_frames(x)
        cls = self.temporal_cls_token.expand(frames.shape[0], -1, -1)
        seq = torch.cat([cls, frames], dim=1) + self.temporal_pos_embed
        for blk in self.temporal_blocks:
            seq = blk(seq)
        return self.temporal_norm(seq)[:, 0]
