"""Building blocks shared by the encoders, the grounding module and the decoders.

Masks are boolean, True = a real position. Every softmax over a padded axis goes
through `masked_softmax`, so padded positions get exactly zero weight and never
change a result.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def kaiming_init_linears(module: nn.Module) -> None:
    """LTMI's initialisation: every nn.Linear kaiming-uniform, biases zero (docs/upstream.md#ltmi-release-training)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def length_mask(lengths: Tensor, max_len: int) -> Tensor:
    """[...] lengths -> [..., max_len] bool, True where position < length."""
    return torch.arange(max_len, device=lengths.device) < lengths.unsqueeze(-1)


def masked_softmax(scores: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """Softmax over `dim` where masked-out entries get weight exactly 0.

    Computed in float32 (stable under bf16 autocast). Callers guarantee at least
    one real entry per slice; a slice without one comes out all zeros (weights that
    sum to 0, not 1), never NaN, and passes a zero gradient back.
    """
    scores = scores.float().masked_fill(~mask, torch.finfo(torch.float32).min)
    return torch.softmax(scores, dim=dim) * mask


def masked_log_softmax(scores: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """log of `masked_softmax`; masked-out entries are 0 (they are never summed with weight)."""
    scores = scores.float().masked_fill(~mask, torch.finfo(torch.float32).min)
    return torch.log_softmax(scores, dim=dim).masked_fill(~mask, 0.0)


def sinusoidal_encoding(max_len: int, dim: int) -> Tensor:
    """The fixed sin/cos positional encoding (base 10000) of Vaswani et al.; [max_len, dim]."""
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)  # [L, 1]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # [dim/2]
    table = torch.zeros(max_len, dim)  # [L, dim]
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


def run_lstm(lstm: nn.LSTM, inputs: Tensor, lengths: Tensor, need_outputs: bool = True):
    """Run `lstm` over padded `inputs` [N, L, E] so that padding never reaches a real output.

    Sequences are packed (cuDNN runs packed batches natively); empty sequences are
    run as length 1 and their outputs / final states zeroed. Returns
    (outputs [N, L, dirs*H] or None, final [N, dirs*H]) where `final` joins the
    last layer's final forward (and backward) hidden states.
    """
    n, max_len, _ = inputs.shape
    nonempty = lengths > 0  # [N]
    packed = pack_padded_sequence(inputs, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
    out_packed, (h_n, _) = lstm(packed)
    dirs = 2 if lstm.bidirectional else 1
    final = torch.cat([h_n[-dirs + d] for d in range(dirs)], dim=-1)  # [N, dirs*H]
    final = final * nonempty.unsqueeze(-1).to(final.dtype)
    if not need_outputs:
        return None, final
    outputs, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=max_len)  # [N, L, dirs*H]
    outputs = outputs * nonempty.view(n, 1, 1).to(outputs.dtype)
    return outputs, final


class AttentionPooling(nn.Module):
    """LTMI's self-attention summary (docs/upstream.md#context-vector) and the paper's Eq. 6-7:
    weights = softmax(ReLU(x W1 + b1) W2 + b2) over real positions, summary = weightsᵀ x."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1))

    def distribution(self, x: Tensor, mask: Tensor) -> Tensor:
        """x [N, L, D], mask [N, L] -> weights [N, L] (float32, zero on padding)."""
        return masked_softmax(self.score(x).squeeze(-1), mask)

    @staticmethod
    def pool(weights: Tensor, x: Tensor) -> Tensor:
        """weights [N, L], x [N, L, D] -> [N, D]."""
        return torch.bmm(weights.unsqueeze(1).to(x.dtype), x).squeeze(1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.pool(self.distribution(x, mask), x)
