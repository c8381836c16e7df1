"""LTMI's decoders (docs/upstream.md#decoders-and-losses). Both read the context vector c
of each round (flattened rounds, N = B*R) and receive the shared word embedding
at call time (the model owns it once)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import run_lstm


class DiscriminativeDecoder(nn.Module):
    """Option o -> BiLSTM -> final fwd+bwd states -> Linear(2H -> H) = e_o; score = <e_o, c>."""

    def __init__(self, embed: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.project = nn.Linear(2 * hidden, hidden)
        # The release's decoder LayerNorm acts on a buffer that is then overwritten: a no-op
        # that never trains (quirk 3). Kept, frozen and unused, for parameter parity only.
        self.release_norm = nn.LayerNorm(hidden)
        self.release_norm.requires_grad_(False)

    def encode_options(self, tokens: Tensor, lengths: Tensor, embedding: nn.Embedding) -> Tensor:
        """tokens [M, L], lengths [M] -> e_o [M, H]; an empty option embeds to 0 (as LTMI).

        VisDial repeats options heavily (the popular answers are in every round), so
        each distinct option is encoded once and gathered back."""
        length = int(lengths.max().clamp(min=1))
        key = torch.cat([tokens[:, :length], lengths.unsqueeze(1)], dim=1)  # [M, L'+1]
        unique, inverse = torch.unique(key, dim=0, return_inverse=True)  # [U, L'+1], [M]
        unique_len = unique[:, -1]
        _, final = run_lstm(self.lstm, embedding(unique[:, :-1]), unique_len, need_outputs=False)  # [U, 2H]
        encoded = self.project(final) * (unique_len > 0).unsqueeze(-1).to(final.dtype)  # [U, H]
        return encoded[inverse]

    def forward(self, context: Tensor, options: Tensor, lengths: Tensor, embedding: nn.Embedding) -> Tensor:
        """context [N, H], options [N, O, L], lengths [N, O] -> scores [N, O]."""
        n, o, length = options.shape
        encoded = self.encode_options(options.reshape(n * o, length), lengths.reshape(n * o), embedding)
        return torch.bmm(encoded.view(n, o, -1), context.unsqueeze(-1).to(encoded.dtype)).squeeze(-1)  # [N, O]


class GenerativeDecoder(nn.Module):
    """2-layer LSTM with h0 = c in every layer and c0 = 0; Linear(H -> V) over words.

    `eval_norm` reproduces the release: a LayerNorm applied to the LSTM outputs only
    when scoring, never in training, so its weights stay at their initial identity
    (frozen here; see docs/model.md, quirk 2)."""

    def __init__(self, embed: int, hidden: int, layers: int, vocab_size: int, dropout: float):
        super().__init__()
        self.layers = layers
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.eval_norm = nn.LayerNorm(hidden)
        self.eval_norm.requires_grad_(False)
        self.output = nn.Linear(hidden, vocab_size)

    def initial_state(self, context: Tensor, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
        """The LSTM's (h0, c0) [layers, M, H]: h0 = the context in every layer, c0 = 0."""
        h0 = context.unsqueeze(0).expand(self.layers, -1, -1).contiguous().to(dtype or context.dtype)
        return h0, torch.zeros_like(h0)

    def _states(self, context: Tensor, inputs: Tensor, embedding: nn.Embedding) -> Tensor:
        """context [M, H], inputs [M, L] (<S> + words) -> LSTM outputs [M, L, H].
        Unidirectional, so right padding never reaches a real position: no packing needed."""
        emb = embedding(inputs)
        outputs, _ = self.lstm(emb, self.initial_state(context, emb.dtype))
        return outputs

    def loss(self, context: Tensor, ans_in: Tensor, ans_out: Tensor, rounds: Tensor, embedding: nn.Embedding) -> Tensor:
        """Teacher-forced token cross-entropy, averaged over the non-PAD target tokens of
        the counted rounds. context [N, H], ans_in/ans_out [N, L], rounds [N] bool."""
        targets = ans_out[rounds]  # [N', L]
        length = int((targets != 0).sum(-1).max().clamp(min=1)) if targets.numel() else 1
        states = self._states(context[rounds], ans_in[rounds][:, :length], embedding)  # [N', L', H]
        logits = self.output(states)  # [N', L', V]
        return F.cross_entropy(logits.flatten(0, 1).float(), targets[:, :length].flatten(), ignore_index=0)

    def _eval_normed(self, states: Tensor) -> Tensor:
        return F.layer_norm(states, states.shape[-1:], self.eval_norm.weight.to(states.dtype),
                            self.eval_norm.bias.to(states.dtype))

    def word_logits(self, states: Tensor) -> Tensor:
        """LSTM outputs [..., H] -> next-word logits [..., V] as scoring sees them (eval norm on)."""
        return self.output(self._eval_normed(states))

    def score(self, context: Tensor, opts_in: Tensor, opts_out: Tensor, embedding: nn.Embedding,
              chunk_tokens: int = 8192) -> Tensor:
        """Summed log-likelihood of each option's words + </S> (no length normalisation).
        context [N, H], opts_in/opts_out [N, O, L] -> [N, O]. The vocabulary projection
        runs on the real target tokens only, in chunks, to bound memory."""
        n, o, full = opts_in.shape
        targets = opts_out.reshape(n * o, full)
        length = int((targets != 0).sum(-1).max().clamp(min=1))
        per_option = context.unsqueeze(1).expand(n, o, -1).reshape(n * o, -1)  # [N*O, H]
        states = self._states(per_option, opts_in.reshape(n * o, full)[:, :length], embedding)  # [N*O, L', H]
        states = self._eval_normed(states)
        targets = targets[:, :length]
        real = targets != 0  # [N*O, L']
        rows = real.nonzero()[:, 0]  # [T] which option each real token belongs to
        flat_states, flat_targets = states[real], targets[real]  # [T, H], [T]
        totals = torch.zeros(n * o, device=context.device, dtype=torch.float32)
        for start in range(0, flat_targets.shape[0], chunk_tokens):
            stop = start + chunk_tokens
            log_probs = torch.log_softmax(self.output(flat_states[start:stop]).float(), dim=-1)  # [c, V]
            picked = log_probs.gather(1, flat_targets[start:stop].unsqueeze(1)).squeeze(1)  # [c]
            totals.index_add_(0, rows[start:stop], picked)
        return totals.view(n, o)
