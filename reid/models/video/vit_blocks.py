"""The one Vision-Transformer block shared by every video transformer of unreid.

A :class:`Block` is pre-norm multi-head self-attention plus an MLP, each inside a residual branch
with stochastic depth (Dosovitskiy et al., ICLR 2021; Huang et al., ECCV 2016). Its token-mixing
step has three modes, selected at construction:

* ``"joint"``: attention over all tokens (ViT, ViViT model 1 and 2, VideoMAE);
* ``"divided"``: temporal attention among tokens at the same spatial position plus spatial
  attention among tokens of the same time index, each with its own pre-norm residual branch
  (TimeSformer divided space-time attention, Bertasius et al., ICML 2021; ViViT model 3,
  factorised self-attention, Arnab et al., ICCV 2021). The temporal branch ends in a linear
  layer ``temporal_fc`` initialised to zero, so a fresh block acts exactly as an image block;
* ``"factorised_dot"``: ViViT model 4, factorised dot-product attention: half of the heads
  attend spatially, the other half temporally, their outputs are concatenated before the output
  projection.

Tokens are laid out time-major: ``x[:, p + t * S + s]`` is spatial position ``s`` of time index
``t`` after ``p`` prefix (class) tokens. ``grid=(T, S)`` tells a block that layout.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_EXPLICIT_ATTENTION = False


@contextlib.contextmanager
def explicit_attention() -> Iterator[None]:
    """Compute attention as ``softmax(q k^T / sqrt(d)) v`` with plain matmuls inside the block.

    ``F.scaled_dot_product_attention`` is faster but its fused CPU kernel is invisible to
    ``torch.utils.flop_counter.FlopCounterMode``; the benchmark counts FLOPs under this context.
    """
    global _EXPLICIT_ATTENTION
    previous = _EXPLICIT_ATTENTION
    _EXPLICIT_ATTENTION = True
    try:
        yield
    finally:
        _EXPLICIT_ATTENTION = previous


def attend(q: Tensor, k: Tensor, v: Tensor, dropout_p: float = 0.0) -> Tensor:
    """Scaled dot-product attention, ``(..., L, d) x (..., M, d) x (..., M, d) -> (..., L, d)``.

    Vaswani et al., NeurIPS 2017: ``softmax(q k^T / sqrt(d)) v``; any leading batch dimensions.
    """
    if _EXPLICIT_ATTENTION:
        weights = (q * (q.shape[-1] ** -0.5)) @ k.transpose(-2, -1)
        weights = weights.softmax(dim=-1)
        if dropout_p > 0:
            weights = F.dropout(weights, dropout_p)
        return weights @ v
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability ``p``.

    Surviving samples are scaled by ``1 / (1 - p)`` so the expectation is unchanged.
    """
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """Module wrapper of :func:`drop_path`."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    """Two linear layers with GELU: ``(..., D) -> (..., hidden) -> (..., D)``."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Attention(nn.Module):
    """Multi-head self-attention over the second dimension: ``(B, N, D) -> (B, N, D)``.

    Keys follow timm (``qkv``, ``proj``) so ViT checkpoints load by name.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)

    def qkv_heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(B, N, D)`` -> three ``(B, heads, N, head_dim)`` tensors."""
        b, n, _ = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def merge_heads(self, out: Tensor) -> Tensor:
        """``(B, heads, N, head_dim)`` -> projected ``(B, N, D)``."""
        b, h, n, d = out.shape
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, h * d)))

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv_heads(x)
        out = attend(q, k, v, self.attn_drop if self.training else 0.0)
        return self.merge_heads(out)


class FactorisedDotProductAttention(Attention):
    """ViViT model 4 (Arnab et al., ICCV 2021, Sec. 3.3): half the heads spatial, half temporal.

    Spatial heads attend among the ``S`` tokens of the same time index, temporal heads among the
    ``T`` tokens of the same spatial position; the head outputs are concatenated and projected.
    Input ``(B, T * S, D)`` (no prefix tokens), ``grid=(T, S)``.
    """

    def __init__(self, dim: int, num_heads: int, **kwargs) -> None:
        if num_heads % 2:
            raise ValueError(f"factorised dot-product attention needs an even num_heads, got "
                             f"{num_heads}")
        super().__init__(dim, num_heads, **kwargs)

    def forward(self, x: Tensor, grid: tuple[int, int]) -> Tensor:  # type: ignore[override]
        t, s = grid
        b, n, _ = x.shape
        if n != t * s:
            raise ValueError(f"factorised dot-product attention got {n} tokens for grid {grid}")
        q, k, v = self.qkv_heads(x)
        hs = self.num_heads // 2
        drop = self.attn_drop if self.training else 0.0

        def spatial(z: Tensor) -> Tensor:
            return z[:, :hs].reshape(b, hs, t, s, self.head_dim)

        def temporal(z: Tensor) -> Tensor:
            return z[:, hs:].reshape(b, hs, t, s, self.head_dim).transpose(2, 3)

        out_s = attend(spatial(q), spatial(k), spatial(v), drop).reshape(b, hs, n, self.head_dim)
        out_t = attend(temporal(q), temporal(k), temporal(v), drop).transpose(2, 3)
        out_t = out_t.reshape(b, hs, n, self.head_dim)
        return self.merge_heads(torch.cat([out_s, out_t], dim=1))


ATTN_MODES = ("joint", "divided", "factorised_dot")


class Block(nn.Module):
    """Pre-norm transformer block ``x + DP(mix(LN(x)))``, ``x + DP(MLP(LN(x)))``.

    Args:
        dim: token width D.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / D.
        qkv_bias: bias of the qkv projection.
        drop_path: stochastic-depth probability of both residual branches.
        attn_mode: ``"joint"``, ``"divided"`` or ``"factorised_dot"`` (module docstring).
        divided_order: order of the two attentions of ``"divided"`` mode:
            ``("temporal", "spatial")`` for TimeSformer, ``("spatial", "temporal")`` for ViViT 3.
        attn_drop, proj_drop: dropout rates inside attention.

    ``forward(x, grid)``: ``x`` is ``(B, N, D)``; ``grid=(T, S)`` is required by the factorised
    modes, and any ``N - T * S`` leading tokens are prefix (class) tokens. In ``"divided"`` mode
    prefix tokens skip temporal attention and join the spatial attention of every time index,
    their per-time outputs averaged (as in TimeSformer).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, attn_mode: str = "joint",
                 divided_order: tuple[str, str] = ("temporal", "spatial"),
                 attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        if attn_mode not in ATTN_MODES:
            raise ValueError(f"unknown attn_mode {attn_mode!r}; expected one of {ATTN_MODES}")
        if sorted(divided_order) != ["spatial", "temporal"]:
            raise ValueError(f"divided_order must order 'spatial' and 'temporal', got "
                             f"{divided_order}")
        self.attn_mode = attn_mode
        self.divided_order = tuple(divided_order)
        attn_cls = FactorisedDotProductAttention if attn_mode == "factorised_dot" else Attention
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = attn_cls(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop,
                             proj_drop=proj_drop)
        if attn_mode == "divided":
            self.temporal_norm1 = nn.LayerNorm(dim, eps=1e-6)
            self.temporal_attn = Attention(dim, num_heads, qkv_bias=qkv_bias,
                                           attn_drop=attn_drop, proj_drop=proj_drop)
            self.temporal_fc = nn.Linear(dim, dim)
            nn.init.zeros_(self.temporal_fc.weight)
            nn.init.zeros_(self.temporal_fc.bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=proj_drop)

    def forward(self, x: Tensor, grid: tuple[int, int] | None = None) -> Tensor:
        if self.attn_mode == "joint":
            x = x + self.drop_path(self.attn(self.norm1(x)))
        else:
            if grid is None:
                raise ValueError(f"attn_mode {self.attn_mode!r} needs grid=(T, S)")
            if self.attn_mode == "factorised_dot":
                x = x + self.drop_path(self.attn(self.norm1(x), grid))
            else:
                for step in self.divided_order:
                    x = self._temporal(x, grid) if step == "temporal" else self._spatial(x, grid)
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def _split(self, x: Tensor, grid: tuple[int, int]) -> tuple[Tensor, Tensor]:
        t, s = grid
        p = x.shape[1] - t * s
        if p < 0:
            raise ValueError(f"block got {x.shape[1]} tokens, fewer than grid {grid} needs")
        return x[:, :p], x[:, p:]

    def _temporal(self, x: Tensor, grid: tuple[int, int]) -> Tensor:
        """Residual temporal attention over ``T`` tokens per spatial position."""
        t, s = grid
        prefix, tokens = self._split(x, grid)
        b, _, d = tokens.shape
        seq = tokens.reshape(b, t, s, d).transpose(1, 2).reshape(b * s, t, d)
        res = self.temporal_fc(self.temporal_attn(self.temporal_norm1(seq)))
        res = res.reshape(b, s, t, d).transpose(1, 2).reshape(b, t * s, d)
        return torch.cat([prefix, tokens + self.drop_path(res)], dim=1)

    def _spatial(self, x: Tensor, grid: tuple[int, int]) -> Tensor:
        """Residual spatial attention over ``p + S`` tokens per time index."""
        t, s = grid
        prefix, tokens = self._split(x, grid)
        b, p, d = prefix.shape
        seq = tokens.reshape(b * t, s, d)
        if p:
            rep = prefix.unsqueeze(1).expand(b, t, p, d).reshape(b * t, p, d)
            seq = torch.cat([rep, seq], dim=1)
        res = self.drop_path(self.attn(self.norm1(seq)))
        res_prefix = res[:, :p].reshape(b, t, p, d).mean(dim=1)
        res_tokens = res[:, p:].reshape(b, t * s, d)
        return torch.cat([prefix + res_prefix, tokens + res_tokens], dim=1)


def sincos_pos_embed(num_positions: int, dim: int) -> Tensor:
    """Fixed 1-D sinusoidal position table (Vaswani et al., 2017), ``(1, num_positions, dim)``.

    Column ``2i`` holds ``sin(n / 10000^(2i/dim))`` and ``2i+1`` the cosine, as in VideoMAE.
    """
    pos = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)
    idx = torch.arange(dim, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, 2 * torch.div(idx, 2, rounding_mode="floor") / dim)
    table = torch.where(idx.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float().unsqueeze(0)


def resize_pos_embed(pos: Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int],
                     num_prefix: int = 0) -> Tensor:
    """Bicubic resize of a 2-D ViT position table ``(1, p + h*w, D) -> (1, p + h'*w', D)``.

    The ``num_prefix`` leading rows (class token) are kept unchanged.
    """
    if tuple(old_grid) == tuple(new_grid):
        return pos
    prefix, grid = pos[:, :num_prefix], pos[:, num_prefix:]
    if grid.shape[1] != old_grid[0] * old_grid[1]:
        raise ValueError(f"position table has {grid.shape[1]} spatial rows, grid {old_grid} "
                         f"needs {old_grid[0] * old_grid[1]}")
    d = grid.shape[-1]
    img = grid.reshape(1, old_grid[0], old_grid[1], d).permute(0, 3, 1, 2)
    img = F.interpolate(img, size=tuple(new_grid), mode="bicubic", align_corners=False)
    grid = img.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], d)
    return torch.cat([prefix, grid], dim=1)


def inflate_conv_weight(weight: Tensor, time_size: int, mode: str = "mean") -> Tensor:
    """Inflate a 2-D convolution kernel ``(O, I, kh, kw)`` to 3-D ``(O, I, time_size, kh, kw)``.

    ``"mean"``: the 2-D kernel copied at every time offset and divided by ``time_size`` (I3D,
    Carreira & Zisserman, CVPR 2017), so a clip of identical frames gives the 2-D response.
    ``"center"``: the 2-D kernel at the central offset ``time_size // 2``, zeros elsewhere (ViViT
    central-frame initialisation), so each output time sees only its central input frame.
    """
    if weight.ndim != 4:
        raise ValueError(f"expected a 4-D conv weight, got shape {tuple(weight.shape)}")
    if mode == "mean":
        return weight.unsqueeze(2).repeat(1, 1, time_size, 1, 1) / time_size
    if mode == "center":
        out = weight.new_zeros(weight.shape[:2] + (time_size,) + weight.shape[2:])
        out[:, :, time_size // 2] = weight
        return out
    raise ValueError(f"unknown inflation mode {mode!r}; expected 'mean' or 'center'")


def init_vit_weights(module: nn.Module) -> None:
    """timm-style initialisation: truncated normal (std 0.02) linears, unit LayerNorm.

    ``temporal_fc`` layers keep their zero initialisation.
    """
    for name, m in module.named_modules():
        if name.endswith("temporal_fc"):
            continue
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.Conv2d, nn.Conv3d)) and name.endswith("proj"):
            fan_in = m.weight[0].numel()
            nn.init.trunc_normal_(m.weight, std=math.sqrt(1.0 / fan_in))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
