"""A plain image ViT built from the shared :class:`~reid.models.video.vit_blocks.Block`.

It is the 2-D model the video transformers are inflated from: its state-dict keys follow timm
(``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``blocks.i.{norm1,attn.qkv,attn.proj,norm2,
mlp.fc1,mlp.fc2}``, ``norm``), so a local timm / DeiT checkpoint loads by name, and
:func:`reid.models.video.checkpoint.load_2d_vit` maps its keys into any video transformer.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from reid.models.video.vit_blocks import Block, init_vit_weights


class VisionTransformer2D(nn.Module):
    """Image ViT (Dosovitskiy et al., ICLR 2021): ``(B, C, H, W) -> (B, D)``.

    Args:
        img_size: (height, width) in pixels, multiples of ``patch_size``.
        patch_size: square patch side in pixels.
        in_chans: input channels.
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_path: transformer size;
            stochastic depth grows linearly to ``drop_path`` over the blocks.
        class_token: prepend a learnable class token.
        global_pool: ``"token"`` (class token output) or ``"avg"`` (mean of patch tokens).
    """

    def __init__(self, img_size: tuple[int, int] = (256, 128), patch_size: int = 16,
                 in_chans: int = 3, embed_dim: int = 384, depth: int = 12, num_heads: int = 6,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_path: float = 0.0,
                 class_token: bool = True, global_pool: str = "token") -> None:
        super().__init__()
        if global_pool not in ("token", "avg") or (global_pool == "token" and not class_token):
            raise ValueError(f"global_pool={global_pool!r} with class_token={class_token}")
        h, w = img_size
        if h % patch_size or w % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        self.grid = (h // patch_size, w // patch_size)
        self.num_prefix = int(class_token)
        self.global_pool = global_pool
        self.out_dim = embed_dim
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
        if class_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.num_prefix + self.grid[0] * self.grid[1], embed_dim))
        rates = torch.linspace(0, drop_path, depth).tolist()
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, rates[i]) for i in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if class_token:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        init_vit_weights(self)

    def forward_tokens(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> normalised tokens ``(B, prefix + h*w, D)``."""
        tokens = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        if self.num_prefix:
            tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self.pos_embed
        for blk in self.blocks:
            tokens = blk(tokens)
        return self.norm(tokens)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.forward_tokens(x)
        if self.global_pool == "token":
            return tokens[:, 0]
        return tokens[:, self.num_prefix:].mean(dim=1)
