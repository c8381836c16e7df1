"""LTMI and LTMI-LG assembled: encoders -> stacked LTMI blocks -> image summary
(LTMI's pooling, or LG's prior/posterior) + question pooling -> context c ->
discriminative and/or generative decoder. Batches are the dicts of
docs/formats.md ("A batch"); rounds are processed flattened, N = B*R.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.config import LGConfig, ModelConfig
from ..core.errors import VisdialLGError
from ..core.runs import RunSpec, parse_run_id
from .attention import LTMIBlock
from .common import AttentionPooling, kaiming_init_linears, length_mask, masked_softmax
from .decoders import DiscriminativeDecoder, GenerativeDecoder
from .generation import DecoderStepper, Generated, beam_search
from .encoders import HistoryEncoder, ImageEncoder, TokenEncoder
from .grounding import ImageSummary, grounding_loss, replace_distribution, summarise

FEATURE_DIM = 2048  # bottom-up-attention pool5 features


@dataclass
class Encoded:
    """The utilities after the LTMI blocks, per round."""

    image: Tensor  # [N, K, D]
    image_mask: Tensor  # [N, K]
    question: Tensor  # [N, L, D]  the token-level context x of the paper (§3)
    question_mask: Tensor  # [N, L]


def concat_answer(question: Tensor, question_len: Tensor, answer: Tensor, answer_len: Tensor):
    """Tokens "question words, then answer words", truncated to the question width.
    question [..., L], answer [..., L'] -> ([..., L], lengths [...])."""
    width = question.shape[-1]
    position = torch.arange(width, device=question.device)  # [L]
    offset = (position - question_len.unsqueeze(-1)).clamp(0, answer.shape[-1] - 1)  # [..., L]
    shifted = answer.gather(-1, offset)
    in_answer = position < (question_len + answer_len).unsqueeze(-1)
    tokens = torch.where(position < question_len.unsqueeze(-1), question, torch.where(in_answer, shifted, 0))
    return tokens, (question_len + answer_len).clamp(max=width)


class VisualDialogModel(nn.Module):
    def __init__(self, vocab_size: int, cfg: ModelConfig, decoder: str, grounding: str | None = None,
                 lambda_: float = 1.0, feature_dim: int = FEATURE_DIM):
        super().__init__()
        if decoder not in ("disc", "gen", "multi"):
            raise ValueError(f"unknown decoder '{decoder}'")
        hidden, embed, layers = cfg.hidden, cfg.embed, cfg.lstm_layers
        self.decoder = decoder
        self.feature_dim = feature_dim
        self.grounding = grounding  # None = plain LTMI, else the LG loss of Table 6
        self.lambda_ = lambda_
        self.embedding = nn.Embedding(vocab_size, embed, padding_idx=0)  # shared by every text module
        self.question_encoder = TokenEncoder(embed, hidden, layers)
        self.history_encoder = HistoryEncoder(embed, hidden, layers)
        self.image_encoder = ImageEncoder(feature_dim, hidden, cfg.box_bins, cfg.dropout)
        self.blocks = nn.ModuleList(LTMIBlock(hidden, cfg.heads, cfg.pad_slots, cfg.dropout) for _ in range(cfg.blocks))
        self.image_summary = ImageSummary(hidden, learn_to_ground=grounding is not None)
        self.question_pool = AttentionPooling(hidden)
        self.context = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                     nn.LayerNorm(hidden))
        # LG's answer encoder (y) runs only in training: not part of the inference model.
        self.answer_encoder = TokenEncoder(embed, hidden, layers) if grounding else None
        self.disc = DiscriminativeDecoder(embed, hidden, layers, cfg.dropout) if decoder in ("disc", "multi") else None
        self.gen = (GenerativeDecoder(embed, hidden, layers, vocab_size, cfg.dropout)
                    if decoder in ("gen", "multi") else None)
        kaiming_init_linears(self)
        # Parameters the released model has but never trains (their outputs are never read):
        # frozen, so counts match the release and DDP sees no unused trainable parameter.
        for module in self.blocks[-1].history_update():
            module.requires_grad_(False)

    # ------------------------------------------------------------------ encoding

    def encode(self, batch: dict, question: Tensor | None = None, question_len: Tensor | None = None) -> Encoded:
        question = batch["ques_tokens"] if question is None else question  # [B, R, L]
        question_len = batch["ques_len"] if question_len is None else question_len  # [B, R]
        b, r, _ = question.shape
        image, image_mask = self.image_encoder(batch["img_feat"], batch["boxes"], batch["num_boxes"],
                                               batch["img_w"], batch["img_h"])  # [B, K, D]
        k, d = image.shape[1:]
        image = image.unsqueeze(1).expand(b, r, k, d).reshape(b * r, k, d)  # [N, K, D]
        image_mask = image_mask.unsqueeze(1).expand(b, r, k).reshape(b * r, k)
        ques, ques_mask = self.question_encoder(self.embedding(question.flatten(0, 1)), question_len.flatten())
        hist, hist_mask = self.history_encoder(self.embedding(batch["hist_tokens"]), batch["hist_len"],
                                               batch["hist_mask"])  # [N, T, D]
        for i, block in enumerate(self.blocks):
            last = i == len(self.blocks) - 1
            image, ques, hist = block(image, image_mask, ques, ques_mask, hist, hist_mask, update_history=not last)
        return Encoded(image, image_mask, ques, ques_mask)

    def _context(self, enc: Encoded, distribution: Tensor, features: Tensor) -> Tensor:
        """c = LN(W2 ReLU(W1 [v ; pool(Q)])): [N, D]."""
        v = summarise(distribution, features)  # [N, D]
        return self.context(torch.cat([v, self.question_pool(enc.question, enc.question_mask)], dim=-1))

    def _posterior_logits(self, batch: dict, enc: Encoded) -> Tensor:
        """LG's posterior G logits [N, K] from x + y; equal to the prior's for rounds without an answer."""
        answer_len = batch["ans_len"].flatten()  # [N]
        answer, _ = self.answer_encoder(self.embedding(batch["ans"].flatten(0, 1)), answer_len)  # [N, L, D]
        answer_mask = length_mask(answer_len, answer.shape[1])
        return self.image_summary.posterior(enc.image, enc.question, enc.question_mask, answer, answer_mask)

    # ------------------------------------------------------------------ training

    def forward(self, batch: dict) -> dict[str, Tensor]:
        """The training objective: task loss(es) + lambda * grounding loss (LG)."""
        enc = self.encode(batch)
        rounds = batch["round_mask"].flatten()  # [N]
        prior_logits, features = self.image_summary.prior(enc.image, enc.image_mask, enc.question, enc.question_mask)
        prior = masked_softmax(prior_logits, enc.image_mask)  # [N, K]
        out: dict[str, Tensor] = {}
        if self.grounding:
            post_logits = self._posterior_logits(batch, enc)
            posterior = masked_softmax(post_logits, enc.image_mask)
            v_prior, v_post = summarise(prior, features), summarise(posterior, features)  # [N, D]
            answered = batch["ans_len"].flatten() > 0
            # The decoder sees v_post while training (Eq. 9-11); v_prior where no answer is known.
            distribution = torch.where(answered.unsqueeze(-1), posterior, prior)
            out["ground_loss"] = grounding_loss(self.grounding, prior_logits, post_logits, enc.image_mask,
                                                v_prior, v_post, rounds & answered)
        else:
            distribution = prior
        context = self._context(enc, distribution, features)  # [N, D]
        loss = context.new_zeros(())
        if self.disc is not None:
            out["disc_loss"] = self._disc_loss(batch, context, rounds)
            loss = loss + out["disc_loss"]
        if self.gen is not None:
            out["gen_loss"] = self._gen_loss(batch, context, rounds)
            loss = loss + out["gen_loss"]
        if self.grounding:
            loss = loss + self.lambda_ * out["ground_loss"]
        out["loss"] = loss
        return out

    def _disc_loss(self, batch: dict, context: Tensor, rounds: Tensor) -> Tensor:
        """Cross-entropy over the options, averaged over rounds with a known answer."""
        target = batch["gt_index"].flatten()  # [N]
        counted = rounds & (target >= 0)
        if not counted.any():
            return context.sum() * 0.0
        opts, opts_len = batch["opts"].flatten(0, 1)[counted], batch["opts_len"].flatten(0, 1)[counted]
        scores = self.disc(context[counted], opts, opts_len, self.embedding)  # [N', O]
        return F.cross_entropy(scores.float(), target[counted])

    def _gen_loss(self, batch: dict, context: Tensor, rounds: Tensor) -> Tensor:
        counted = rounds & (batch["ans_len"].flatten() > 0)
        if not counted.any():
            return context.sum() * 0.0
        return self.gen.loss(context, batch["ans_in"].flatten(0, 1), batch["ans_out"].flatten(0, 1), counted,
                             self.embedding)

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def score(self, batch: dict, grounding: str = "prior", oracle_regions: Tensor | None = None,
              generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Option scores [B, R, O]: "disc" logits, "gen" summed log-likelihoods, "avg" = their
        mean (multi, as LTMI). Grounding at inference: prior | mean | random | oracle.
        Call model.eval() first. `random` shuffles with `generator` (default: seeded by the
        batch's image ids, so a batch always gets the same permutation)."""
        b, r, o, _ = batch["opts"].shape
        context = self._inference_context(batch, grounding, oracle_regions, generator)  # [N, D]
        out = {}
        if self.disc is not None:
            out["disc"] = self.disc(context, batch["opts"].flatten(0, 1), batch["opts_len"].flatten(0, 1),
                                    self.embedding).float().view(b, r, o)
        if self.gen is not None:
            out["gen"] = self.gen.score(context, batch["opts_in"].flatten(0, 1), batch["opts_out"].flatten(0, 1),
                                        self.embedding).view(b, r, o)
        if self.disc is not None and self.gen is not None:
            out["avg"] = (out["disc"] + out["gen"]) / 2
        return out

    def _inference_context(self, batch: dict, grounding: str, oracle_regions: Tensor | None,
                           generator: torch.Generator | None) -> Tensor:
        """Each round's context vector [N, D] at inference, with grounding `grounding`."""
        enc = self.encode(batch)
        logits, features = self.image_summary.prior(enc.image, enc.image_mask, enc.question, enc.question_mask)
        prior = masked_softmax(logits, enc.image_mask)
        if grounding == "random" and generator is None:
            generator = torch.Generator().manual_seed(int(batch["image_id"].sum()))
        oracle = oracle_regions.flatten(0, 1) if oracle_regions is not None else None
        distribution = replace_distribution(grounding, prior, enc.image_mask, oracle, generator)
        return self._context(enc, distribution, features)

    @torch.no_grad()
    def inference_context(self, batch: dict, grounding: str = "prior") -> Tensor:
        """Each round's context vector c [N, D] that `score` and `generate` decode from (for
        scoring answers other than a round's options, e.g. a whole answer pool). Call eval() first."""
        return self._inference_context(batch, grounding, None, None)

    @torch.no_grad()
    def generate(self, batch: dict, width: int = 1, max_len: int = 20, grounding: str = "prior") -> Generated:
        """Each round's generated answer (models/generation.py), flattened rounds N = B*R:
        greedy for width 1, else beam search; from the context the scores use."""
        if self.gen is None:
            raise VisdialLGError("this run has no generative decoder: only retrieval (ranking the options) is available")
        context = self._inference_context(batch, grounding, None, None)
        stepper = DecoderStepper(self.gen, context, self.embedding)
        return beam_search(stepper, context.shape[0], width, max_len)

    @torch.no_grad()
    def region_distributions(self, batch: dict) -> dict[str, Tensor]:
        """Each round's distribution over regions [B, R, K]: "prior" (without the answer) and
        "posterior" (with the GT answer; equal to the prior where no answer is given).
        LG: g and G. LTMI: its pooling weights, and the same pooling with the answer words
        appended to the question input (docs/model.md, "LTMI with the answer")."""
        b, r = batch["ques_len"].shape
        enc = self.encode(batch)
        logits, _ = self.image_summary.prior(enc.image, enc.image_mask, enc.question, enc.question_mask)
        prior = masked_softmax(logits, enc.image_mask)
        if self.grounding:
            posterior = masked_softmax(self._posterior_logits(batch, enc), enc.image_mask)
        else:
            tokens, lengths = concat_answer(batch["ques_tokens"], batch["ques_len"], batch["ans"], batch["ans_len"])
            with_answer = self.encode(batch, tokens, lengths)
            post_logits, _ = self.image_summary.prior(with_answer.image, with_answer.image_mask,
                                                      with_answer.question, with_answer.question_mask)
            posterior = masked_softmax(post_logits, enc.image_mask)
        k = prior.shape[-1]
        return {"prior": prior.view(b, r, k), "posterior": posterior.view(b, r, k)}


def build_model(spec: RunSpec, vocab_size: int, model_cfg: ModelConfig, lg_cfg: LGConfig) -> VisualDialogModel:
    return VisualDialogModel(vocab_size, model_cfg, spec.decoder, spec.grounding_loss, lg_cfg.lambda_)


def _count(module: nn.Module | None) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def count_parameters(model: VisualDialogModel) -> dict:
    """{"total", "inference", "components"}: all parameters; those used at inference
    (all but LG's answer encoder); and the breakdown of docs/upstream.md#parameter-counts."""
    components = {
        "embedding": _count(model.embedding),
        "question_encoder": _count(model.question_encoder),
        "history_encoder": _count(model.history_encoder),
        "image_encoder": _count(model.image_encoder),
        "attention_blocks": _count(model.blocks),
        "summary_and_context": _count(model.image_summary) + _count(model.question_pool) + _count(model.context),
        "disc_decoder": _count(model.disc),
        "gen_decoder": _count(model.gen),
        "answer_encoder": _count(model.answer_encoder),
    }
    total = _count(model)
    assert total == sum(components.values()), "a module is missing from the parameter breakdown"
    return {"total": total, "inference": total - components["answer_encoder"], "components": components}


def model_info(run_id: str, vocab_size: int, model_cfg: ModelConfig, lg_cfg: LGConfig) -> dict:
    """`visdial-lg model-info`: the parameter counts of a run's model at the config's sizes."""
    if vocab_size < 5:
        raise VisdialLGError(f"--vocab-size must be at least 5 (4 special tokens + words), got {vocab_size}")
    spec = parse_run_id(run_id)
    model = build_model(spec, vocab_size, model_cfg, lg_cfg)
    return {"run": spec.run_id, "vocab_size": vocab_size, **count_parameters(model)}
