"""LTMI's input encoders (docs/upstream.md#encoders): token-level text (question, and
LG's answer), sentence-level history, and region features with box geometry.

Text encoders take already-embedded tokens: the one shared word embedding is
owned by the model (`VisualDialogModel.embedding`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .common import length_mask, run_lstm, sinusoidal_encoding


class TokenEncoder(nn.Module):
    """Per-token utility: BiLSTM -> Linear(2H -> H) -> + positional encoding -> LayerNorm.

    Used for the question (Q in the paper, §3) and for LG's answer (y)."""

    def __init__(self, embed: int, hidden: int, layers: int, max_len: int = 20):
        super().__init__()
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.project = nn.Linear(2 * hidden, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.register_buffer("position", sinusoidal_encoding(max_len, hidden), persistent=False)

    def forward(self, embedded: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """embedded [N, L, E], lengths [N] -> (tokens [N, L, H], mask [N, L])."""
        outputs, _ = run_lstm(self.lstm, embedded, lengths)  # [N, L, 2H]
        length = embedded.shape[1]
        tokens = self.norm(self.project(outputs) + self.position[:length])  # [N, L, H]
        # An empty sequence (padded round) keeps one position so no softmax is empty.
        return tokens, length_mask(lengths.clamp(min=1), length)


class HistoryEncoder(nn.Module):
    """One vector per history entry: the final forward+backward states of a BiLSTM
    -> Linear(2H -> H) -> + positional encoding over the round index -> LayerNorm."""

    def __init__(self, embed: int, hidden: int, layers: int, max_rounds: int = 10):
        super().__init__()
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.project = nn.Linear(2 * hidden, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.register_buffer("position", sinusoidal_encoding(max_rounds, hidden), persistent=False)

    def forward(self, embedded: Tensor, lengths: Tensor, visible: Tensor) -> tuple[Tensor, Tensor]:
        """embedded [B, T, L, E], lengths [B, T], visible [B, R, T] (hist_mask)
        -> (history [B*R, T, H], mask [B*R, T]): round i's view of the dialog history."""
        b, t, length, e = embedded.shape
        _, final = run_lstm(self.lstm, embedded.reshape(b * t, length, e), lengths.reshape(b * t), need_outputs=False)
        entries = self.norm(self.project(final).view(b, t, -1) + self.position[:t])  # [B, T, H]
        visible = visible.clone()
        visible[..., 0] = True  # the caption is always visible; keeps every softmax non-empty
        r = visible.shape[1]
        # Each round sees its own causal prefix; invisible entries are zeroed and masked (as LTMI).
        history = entries.unsqueeze(1) * visible.unsqueeze(-1).to(entries.dtype)  # [B, R, T, H]
        return history.reshape(b * r, t, -1), visible.reshape(b * r, t)


class ImageEncoder(nn.Module):
    """Regions: f = LN(Dropout(ReLU(W x))); each box corner coordinate, quantised into
    `bins` steps of the image size, has its own embedding, passed through one shared
    Linear -> ReLU -> Dropout -> LN; the 4 are averaged, added to f, and normalised."""

    def __init__(self, feature_dim: int, hidden: int, bins: int, dropout: float):
        super().__init__()
        self.bins = bins
        self.feature = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.LayerNorm(hidden))
        self.coordinate = nn.ModuleList(nn.Embedding(bins, hidden) for _ in range(4))  # x1, y1, x2, y2
        self.box = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.LayerNorm(hidden))
        self.norm = nn.LayerNorm(hidden)

    def forward(self, features: Tensor, boxes: Tensor, num_boxes: Tensor, width: Tensor, height: Tensor):
        """features [B, K, F], boxes [B, K, 4] (pixels), num_boxes/width/height [B]
        -> (regions [B, K, H], mask [B, K])."""
        size = torch.stack([width, height, width, height], dim=-1).to(boxes.dtype).unsqueeze(1)  # [B, 1, 4]
        bins = (boxes * self.bins / size).floor().long().clamp(0, self.bins - 1)  # [B, K, 4]
        geometry = torch.stack([self.box(emb(bins[..., i])) for i, emb in enumerate(self.coordinate)]).mean(0)  # [B, K, H]
        regions = self.norm(self.feature(features) + geometry)  # [B, K, H]
        return regions, length_mask(num_boxes.clamp(min=1), features.shape[1])
