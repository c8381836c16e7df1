"""Distributions over visual objects (regions) and the image summary built from them.

LTMI (docs/upstream.md#context-vector) summarises the image by attention pooling of the
encoded regions I. Learning to Ground (the paper, Eq. 1-8) replaces that with
  P = softmax(I xᵀ)            over the real context tokens        (Eq. 4)
  Î = LayerNorm(I + P x)       (parameter-free LN, docs/model.md) (Eq. 5)
  g = softmax(MLP(Î))          prior over regions                 (Eq. 6)
  v_prior = gᵀ Î                                                  (Eq. 7)
and, with x + y for x (Eq. 8), the posterior G. The MLP is LTMI's pooling MLP,
so at inference LG has exactly LTMI's parameters. Choices the paper leaves
open are explained in docs/model.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.runs import GROUNDING_VARIANTS
from .common import AttentionPooling, masked_log_softmax, masked_softmax


def cross_attend(image: Tensor, context: Tensor, context_mask: Tensor) -> Tensor:
    """Eq. 4-5: each region takes a convex mix of the context tokens.
    image [N, K, D], context [N, L, D], context_mask [N, L] -> P x [N, K, D]."""
    scores = torch.bmm(image, context.transpose(1, 2))  # [N, K, L]
    weights = masked_softmax(scores, context_mask.unsqueeze(1))  # [N, K, L]
    return torch.bmm(weights.to(context.dtype), context)  # [N, K, D]


class ImageSummary(nn.Module):
    """Region logits and the features they pool: LTMI's pooling of I, or LG's Eq. 4-7."""

    def __init__(self, dim: int, learn_to_ground: bool):
        super().__init__()
        self.learn_to_ground = learn_to_ground
        self.pooling = AttentionPooling(dim)  # W1, b1, W2, b2 of Eq. 6

    def _grounded(self, image: Tensor, context: Tensor, context_mask: Tensor) -> Tensor:
        """Î = LayerNorm(I + P x): [N, K, D]."""
        mixed = image + cross_attend(image, context, context_mask)
        return F.layer_norm(mixed, mixed.shape[-1:])

    def prior(self, image: Tensor, image_mask: Tensor, context: Tensor, context_mask: Tensor):
        """-> (logits [N, K], features [N, K, D]): g = masked_softmax(logits), v = gᵀ features."""
        features = self._grounded(image, context, context_mask) if self.learn_to_ground else image
        return self.pooling.score(features).squeeze(-1), features

    def posterior(self, image: Tensor, context: Tensor, context_mask: Tensor, answer: Tensor, answer_mask: Tensor):
        """LG's G logits [N, K] from x + y (Eq. 8), over the union of real positions;
        a position real in only one of them contributes that one alone."""
        xy = context * context_mask.unsqueeze(-1) + answer * answer_mask.unsqueeze(-1)  # [N, L, D]
        grounded = self._grounded(image, xy, context_mask | answer_mask)
        return self.pooling.score(grounded).squeeze(-1)


def summarise(distribution: Tensor, features: Tensor) -> Tensor:
    """Eq. 7: v = distributionᵀ features; [N, K] x [N, K, D] -> [N, D]."""
    return AttentionPooling.pool(distribution, features)


# ----------------------------------------------------------------- LG training losses


def grounding_loss(kind: str, prior_logits: Tensor, posterior_logits: Tensor, region_mask: Tensor,
                   v_prior: Tensor, v_post: Tensor, rounds: Tensor) -> Tensor:
    """The Table 6 objectives, the posterior side detached as the target.

    prior/posterior_logits [N, K], region_mask [N, K], v_prior/v_post [N, D],
    rounds [N] bool (which rounds count). Distribution terms are summed over the
    real regions (image terms: KL summed over the D softmax entries, MSE averaged
    over D), then averaged over the counted rounds."""
    per_round = torch.zeros(prior_logits.shape[0], device=prior_logits.device)  # [N]
    if kind in ("attn_kl", "attn_kl_image_mse"):
        log_g = masked_log_softmax(prior_logits, region_mask)
        log_big_g = masked_log_softmax(posterior_logits, region_mask).detach()
        per_round = per_round + (log_big_g.exp() * (log_big_g - log_g)).sum(-1)  # KL(G || g)
    if kind == "attn_mse":
        g = masked_softmax(prior_logits, region_mask)
        big_g = masked_softmax(posterior_logits, region_mask).detach()
        per_round = per_round + ((g - big_g) ** 2).sum(-1)
    if kind == "image_kl":
        log_p = torch.log_softmax(v_prior.float(), dim=-1)
        log_q = torch.log_softmax(v_post.float(), dim=-1).detach()
        per_round = per_round + (log_q.exp() * (log_q - log_p)).sum(-1)  # KL(softmax v_post || softmax v_prior)
    if kind in ("image_mse", "attn_kl_image_mse"):
        per_round = per_round + ((v_prior.float() - v_post.float().detach()) ** 2).mean(-1)
    if kind not in ("attn_kl", "attn_mse", "image_kl", "image_mse", "attn_kl_image_mse"):
        raise ValueError(f"unknown grounding loss '{kind}'")
    count = rounds.sum().clamp(min=1)
    return (per_round * rounds).sum() / count


# ------------------------------------------------------------ inference-time variants


def replace_distribution(variant: str, prior: Tensor, region_mask: Tensor, oracle: Tensor | None = None,
                         generator: torch.Generator | None = None) -> Tensor:
    """The distribution used at inference (paper Table 4), all [N, K]:
    prior  - the model's own;
    mean   - uniform over the real regions;
    random - the batch's prior distributions shuffled among its rounds (renormalised
             over the receiving image's real regions; uniform if none of its mass lands there);
    oracle - uniform over the annotated regions `oracle` [N, K] bool (rounds without
             an annotated real region keep the prior)."""
    mask = region_mask.to(prior.dtype)
    if variant == "prior":
        return prior
    if variant == "mean":
        return mask / mask.sum(-1, keepdim=True)
    if variant == "random":
        order = torch.randperm(prior.shape[0], generator=generator).to(prior.device)
        moved = prior[order] * mask
        total = moved.sum(-1, keepdim=True)
        uniform = mask / mask.sum(-1, keepdim=True)
        return torch.where(total > 0, moved / total.clamp(min=1e-30), uniform)
    if variant == "oracle":
        if oracle is None:
            raise ValueError("grounding 'oracle' needs oracle_regions [B, R, K]")
        chosen = oracle.to(prior.dtype) * mask
        count = chosen.sum(-1, keepdim=True)
        return torch.where(count > 0, chosen / count.clamp(min=1), prior)
    raise ValueError(f"unknown grounding variant '{variant}' (expected one of {GROUNDING_VARIANTS})")
