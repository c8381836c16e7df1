"""The LTMI attention block (docs/upstream.md#attention-block): light-weight multi-head
attention without Q/K/V/O projections, with learnable pad slots, used as
self-attention and as two-way co-attention between the image (I), question (Q)
and history (R) utilities, fused per utility by an MLP with residual + LayerNorm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TwoWayAttention(nn.Module):
    """MHA(X, Y): one similarity S = X̃ Ỹᵀ per head (X̃ = [pad_x; X], Ỹ = [pad_y; Y],
    no 1/sqrt(d) scaling, as released) serves both directions:
      out_Y[n] = Σ_m softmax_m(S[m, n]) X̃[m]   ("X attended into Y", at Y positions)
      out_X[m] = Σ_n softmax_n(S[m, n]) Ỹ[n]   ("Y attended into X", at X positions)
    Pad slots are always visible, so no softmax is ever over an empty set."""

    def __init__(self, dim: int, heads: int, pad_slots: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"model.hidden ({dim}) must be divisible by model.heads ({heads})")
        self.heads = heads
        self.pad_x = nn.Parameter(torch.empty(pad_slots, dim))
        self.pad_y = nn.Parameter(torch.empty(pad_slots, dim))
        if pad_slots:
            nn.init.kaiming_uniform_(self.pad_x)
            nn.init.kaiming_uniform_(self.pad_y)

    def _split(self, u: Tensor, pad: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """u [N, L, D] -> heads [N, h, P+L, D/h] and key mask [N, 1, 1, P+L]."""
        n, length, dim = u.shape
        padded = torch.cat([pad.to(u.dtype).expand(n, -1, -1), u], dim=1)  # [N, P+L, D]
        heads = padded.view(n, -1, self.heads, dim // self.heads).transpose(1, 2)  # [N, h, P+L, D/h]
        keep = torch.cat([mask.new_ones(n, pad.shape[0]), mask], dim=1)  # [N, P+L]
        return heads, keep.view(n, 1, 1, -1)

    def _merge(self, heads: Tensor, pad_slots: int) -> Tensor:
        """heads [N, h, P+L, D/h] -> [N, L, D] without the pad rows."""
        n, h, length, d = heads.shape
        return heads.transpose(1, 2).reshape(n, length, h * d)[:, pad_slots:]

    def forward(self, x: Tensor, x_mask: Tensor, y: Tensor, y_mask: Tensor, want_y: bool = True, want_x: bool = True):
        """x [N, M, D], y [N, L, D] -> (out_Y [N, L, D], out_X [N, M, D]); a direction not wanted is None."""
        xh, x_keep = self._split(x, self.pad_x, x_mask)
        yh, y_keep = self._split(y, self.pad_y, y_mask)
        p = self.pad_x.shape[0]
        out_y = out_x = None
        if want_y:  # S[m, n] = x̃_m·ỹ_n; the transposed product gives the softmax over m
            out_y = self._merge(F.scaled_dot_product_attention(yh, xh, xh, attn_mask=x_keep, scale=1.0), p)
        if want_x:
            out_x = self._merge(F.scaled_dot_product_attention(xh, yh, yh, attn_mask=y_keep, scale=1.0), p)
        return out_y, out_x


def _fusion(dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(3 * dim, dim), nn.ReLU(), nn.Dropout(dropout))


class LTMIBlock(nn.Module):
    """One block: 3 self-attentions, 3 two-way co-attentions, then per utility u
    a_u = MLP_u([u<-u ; u<-v ; u<-w]) and u <- LayerNorm(u + a_u)."""

    def __init__(self, dim: int, heads: int, pad_slots: int, dropout: float):
        super().__init__()
        self.self_image = TwoWayAttention(dim, heads, pad_slots)
        self.self_question = TwoWayAttention(dim, heads, pad_slots)
        self.self_history = TwoWayAttention(dim, heads, pad_slots)
        self.image_question = TwoWayAttention(dim, heads, pad_slots)
        self.image_history = TwoWayAttention(dim, heads, pad_slots)
        self.question_history = TwoWayAttention(dim, heads, pad_slots)
        self.fuse_image = _fusion(dim, dropout)
        self.fuse_question = _fusion(dim, dropout)
        self.fuse_history = _fusion(dim, dropout)
        self.norm_image = nn.LayerNorm(dim)
        self.norm_question = nn.LayerNorm(dim)
        self.norm_history = nn.LayerNorm(dim)

    def history_update(self) -> list[nn.Module]:
        """The modules that only produce the history update (dead in the last block)."""
        return [self.self_history, self.fuse_history, self.norm_history]

    def forward(self, image: Tensor, image_mask: Tensor, question: Tensor, question_mask: Tensor,
                history: Tensor, history_mask: Tensor, update_history: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """image [N, K, D], question [N, L, D], history [N, T, D] (+ bool masks) -> same shapes.
        With update_history=False (last block: nothing reads R afterwards) R is returned as is."""
        i_i, _ = self.self_image(image, image_mask, image, image_mask, want_x=False)
        q_q, _ = self.self_question(question, question_mask, question, question_mask, want_x=False)
        q_i, i_q = self.image_question(image, image_mask, question, question_mask)  # Q<-I, I<-Q
        r_i, i_r = self.image_history(image, image_mask, history, history_mask, want_y=update_history)  # R<-I, I<-R
        r_q, q_r = self.question_history(question, question_mask, history, history_mask,
                                         want_y=update_history)  # R<-Q, Q<-R
        image = self.norm_image(image + self.fuse_image(torch.cat([i_i, i_q, i_r], dim=-1)))
        question = self.norm_question(question + self.fuse_question(torch.cat([q_q, q_r, q_i], dim=-1)))
        if update_history:
            r_r, _ = self.self_history(history, history_mask, history, history_mask, want_x=False)
            history = self.norm_history(history + self.fuse_history(torch.cat([r_r, r_q, r_i], dim=-1)))
        return image, question, history
