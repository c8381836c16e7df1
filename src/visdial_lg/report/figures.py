"""The paper's qualitative figures, reproduced on sampled val dialogs.

* Figure 4 analogue (`attention_figures`): for a sampled question, the image with the
  top-3 regions of LTMI's and of LTMI-LG's distribution over regions (the one each
  model uses at inference: LTMI's pooling weights, LG's prior g), side by side,
  one PNG per question.
* Figure 5 analogue (`dialog_examples`): sampled dialogs, each round's question with
  the human answer and, for LTMI and LTMI-LG side by side, the answer each generates
  (beam search, models/generation.py) and the one it retrieves (ranks first among the
  100 options), as Markdown and as HTML (the HTML goes into the Snakemake report).

Samples are drawn with a fixed seed, so reruns draw the same questions.
"""

from __future__ import annotations

import html
import random
from dataclasses import dataclass
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")  # headless: files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from ..text.vocab import Vocabulary  # noqa: E402
from ..core.device import resolve_device
from ..core.errors import InputFormatError  # noqa: E402
from ..evaluation.human import SYSTEMS, answer_text, top_answers  # noqa: E402

TOP = 3
RANK_COLOURS = ("#e41a1c", "#ff7f00", "#ffd92f")  # 1st, 2nd, 3rd region
NAMES = {"ltmi": SYSTEMS["ltmi"], "lg": SYSTEMS["lg"]}


def sample_rounds(num_rounds: np.ndarray, answers: np.ndarray, count: int, seed: int = 0) -> list[tuple[int, int]]:
    """`count` (dialog, round) pairs among the answered rounds, the same for a given seed."""
    pool = [(d, r) for d in range(len(num_rounds)) for r in range(int(num_rounds[d])) if answers[d, r] >= 0]
    if len(pool) < count:
        raise InputFormatError(f"only {len(pool)} answered rounds to draw {count} figure samples from")
    return sorted(random.Random(seed).sample(pool, count))


class FigureModels:
    """The figure runs' trained models ({"ltmi": .., "lg": ..}) and the val dialogs to batch
    for them, loaded once."""

    def __init__(self, checkpoints: dict[str, Path], tokens: Path, features: Path, device: str = "cpu"):
        from ..training.checkpoint import load_trained_model
        from ..training.dataset import VisDialDataset

        self.device = resolve_device(device)
        self.models = {name: load_trained_model(path, self.device)[0] for name, path in checkpoints.items()}
        feature_dim = next(iter(self.models.values())).feature_dim
        self.dataset = VisDialDataset(tokens, features, feature_dim=feature_dim)

    def batch(self, dialogs: list[int]) -> dict:
        """The dialogs (indices into the tokens file) as one batch on the models' device."""
        from ..training.dataset import batch_to, collate

        return batch_to(collate([self.dataset[d] for d in dialogs]), self.device)


# ------------------------------------------------------------------------ Figure 4


def attention_figures(checkpoints: dict[str, Path], tokens: Path, features: Path, vocab_path: Path,
                      image_dirs: list[Path], out_dir: Path, count: int, seed: int = 0,
                      device: str = "cpu") -> list[Path]:
    """checkpoints: {"ltmi": .., "lg": ..}; writes out_dir/attention_{i}.png, i < count."""
    from ..features.images import list_image_folders

    figure_models = FigureModels(checkpoints, tokens, features, device)
    vocab = Vocabulary.load(vocab_path)
    images = {entry.image_id: entry.path for entry in list_image_folders(image_dirs)}
    with h5py.File(tokens, "r") as f:
        num_rounds, answers, image_ids = f["num_rounds"][:], f["answer"][:], f["image_id"][:]
        q_pool, q_len, a_pool, a_len, questions = (f["question_tokens"][:], f["question_len"][:],
                                                   f["answer_tokens"][:], f["answer_len"][:], f["question"][:])
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (d, r) in enumerate(sample_rounds(num_rounds, answers, count, seed)):
        image_id = int(image_ids[d])
        if image_id not in images:
            raise InputFormatError(f"image {image_id} (val dialog {d}) is in none of {', '.join(map(str, image_dirs))}")
        batch = figure_models.batch([d])
        valid = int(batch["num_boxes"][0])
        top = {}
        for name, model in figure_models.models.items():
            prior = model.region_distributions(batch)["prior"][0, r, :valid].float().cpu()  # [valid]
            values, indices = prior.topk(min(TOP, valid))
            top[name] = list(zip(indices.tolist(), values.tolist()))
        boxes = batch["boxes"][0, :valid].float().cpu().numpy()  # [valid, 4] original pixels
        size = (float(batch["img_w"][0]), float(batch["img_h"][0]))
        caption = (f"Q{r + 1}: {answer_text(vocab, q_pool, q_len, questions[d, r])}   "
                   f"A: {answer_text(vocab, a_pool, a_len, answers[d, r])}")
        path = out_dir / f"attention_{i}.png"
        draw_attention(images[image_id], boxes, size, top, caption, f"image {image_id}", path)
        written.append(path)
    return written


def draw_attention(image_path: Path, boxes: np.ndarray, feature_size: tuple[float, float],
                    top: dict[str, list[tuple[int, float]]], caption: str, subtitle: str, out: Path) -> None:
    try:
        with Image.open(image_path) as opened:
            image = np.asarray(opened.convert("RGB"))
    except OSError as e:
        raise InputFormatError(f"cannot read image {image_path}: {e}") from e
    # Boxes are in the pixels the extractor saw; rescale if the file differs.
    sx, sy = image.shape[1] / feature_size[0], image.shape[0] / feature_size[1]
    fig, axes = plt.subplots(1, len(top), figsize=(5 * len(top), 4.6), squeeze=False)
    for ax, (name, regions) in zip(axes[0], top.items()):
        ax.imshow(image)
        for rank, (k, weight) in reversed(list(enumerate(regions))):  # draw the 1st last, on top
            x1, y1, x2, y2 = boxes[k] * [sx, sy, sx, sy]
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=3 - rank * 0.7,
                                   edgecolor=RANK_COLOURS[rank]))
            ax.text(x1 + 2, y1 + 2, f"{rank + 1}: {weight:.2f}", color="black", fontsize=8, va="top",
                    bbox={"facecolor": RANK_COLOURS[rank], "alpha": 0.8, "pad": 1, "lw": 0})
        ax.set_title(f"{NAMES[name]}: top-{len(regions)} regions")
        ax.axis("off")
    fig.suptitle(f"{caption}\n({subtitle})", fontsize=10)
    fig.tight_layout()
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)


# ------------------------------------------------------------------------ Figure 5


@dataclass(frozen=True)
class Generation:
    """What generating answers needs: the runs' checkpoints ({"ltmi": .., "lg": ..}), the val
    features, the beam width (1: greedy) and the device."""

    checkpoints: dict[str, Path]
    features: Path
    width: int
    device: str = "cpu"


def generated_answers(generation: Generation, tokens: Path, vocab: Vocabulary, dialogs: list[int]) -> dict:
    """{model: {dialog index: [each round's generated answer]}} for the dialogs `dialogs`."""
    figure_models = FigureModels(generation.checkpoints, tokens, generation.features, generation.device)
    return generate_answers(figure_models, vocab, dialogs, generation.width)


def generate_answers(figure_models: FigureModels, vocab: Vocabulary, dialogs: list[int], width: int) -> dict:
    """{model: {dialog index: [each round's generated answer]}}, beam search of `width`."""
    from ..training.dataset import OPTION_WORDS

    batch = figure_models.batch(dialogs)
    rounds = batch["ques_len"].shape[1]
    out = {}
    for name, model in figure_models.models.items():
        found = model.generate(batch, width=width, max_len=OPTION_WORDS + 1)  # words + </S>
        texts = [vocab.sentence(t[: int(n)].tolist()) for t, n in zip(found.tokens.cpu(), found.length.cpu())]
        out[name] = {d: texts[i * rounds:(i + 1) * rounds] for i, d in enumerate(dialogs)}
    return out


def dialog_examples(evaluations: dict[str, Path], tokens: Path, vocab_path: Path, out_md: Path,
                    out_html: Path, count: int, seed: int = 0, generation: Generation | None = None) -> list[dict]:
    """evaluations: {"ltmi": val metrics JSON, "lg": val metrics JSON} (generative ranks);
    generation: also each model's generated answer. Writes the sampled dialogs as Markdown and
    HTML; returns them as dicts."""
    vocab = Vocabulary.load(vocab_path)
    best = {name: top_answers(path) for name, path in evaluations.items()}
    with h5py.File(tokens, "r") as f:
        image_ids, num_rounds = f["image_id"][:], f["num_rounds"][:]
        q_pool, q_len, a_pool, a_len = (f["question_tokens"][:], f["question_len"][:], f["answer_tokens"][:],
                                        f["answer_len"][:])
        c_tok, c_len = f["caption_tokens"][:], f["caption_len"][:]
        questions, answers, options = f["question"][:], f["answer"][:], f["answer_options"][:]
    for name, (ids, _) in best.items():
        if not np.array_equal(ids, image_ids):
            raise InputFormatError(f"the {NAMES[name]} ranks do not follow the dialogs of {tokens}")
    rng = random.Random(seed)
    dialogs = sorted(rng.sample(range(len(image_ids)), min(count, len(image_ids))))
    generated = generated_answers(generation, tokens, vocab, dialogs) if generation else {}
    examples = []
    for d in dialogs:
        rounds = []
        for r in range(int(num_rounds[d])):
            row = {"question": answer_text(vocab, q_pool, q_len, questions[d, r]),
                   "human": answer_text(vocab, a_pool, a_len, answers[d, r])}
            for name, (_, first) in best.items():
                row[name] = answer_text(vocab, a_pool, a_len, options[d, r, first[d, r]])
                if name in generated:
                    row[f"{name}_generated"] = generated[name][d][r]
            rounds.append(row)
        examples.append({"image_id": int(image_ids[d]), "caption": " ".join(vocab.to_words(c_tok[d, : c_len[d]])),
                         "rounds": rounds})
    columns = _columns(bool(generated))
    _write(out_md, _markdown(examples, columns))
    _write(out_html, _html(examples, columns))
    return examples


def _columns(generated: bool) -> list[tuple[str, str]]:
    """(key, title) of the table's columns: the two models side by side."""
    columns = [("question", "Question"), ("human", "Human")]
    for name in ("ltmi", "lg"):
        columns += ([(f"{name}_generated", f"{NAMES[name]} generated"), (name, f"{NAMES[name]} retrieved")]
                    if generated else [(name, NAMES[name])])
    return columns


INTRO = ("Sampled val dialogs: each round's question, the human (ground-truth) answer and, for each model "
         "(generative decoder), the answer it generates (beam search) and the one it retrieves (ranks first "
         "among the 100 options).")


def _markdown(examples: list[dict], columns) -> str:
    parts = ["# Example dialogs (paper Figure 5 analogue)\n", INTRO + "\n"]
    for example in examples:
        parts.append(f"## Image {example['image_id']}\n\n*{_md(example['caption'])}*\n")
        parts.append("| # | " + " | ".join(title for _, title in columns) + " |")
        parts.append("|---|" + "---|" * len(columns))
        for r, row in enumerate(example["rounds"], start=1):
            parts.append(f"| {r} | " + " | ".join(_md(row[key]) for key, _ in columns) + " |")
        parts.append("")
    return "\n".join(parts)


def _html(examples: list[dict], columns) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in columns)
    body = []
    for example in examples:
        rows = "".join(
            f"<tr><td>{r}</td>" + "".join(f"<td>{html.escape(row[key])}</td>" for key, _ in columns) + "</tr>"
            for r, row in enumerate(example["rounds"], start=1))
        body.append(f"<h2>Image {example['image_id']}</h2><p><em>{html.escape(example['caption'])}</em></p>"
                    f"<table><tr><th>#</th>{head}</tr>{rows}</table>")
    style = ("body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin-bottom:1.5em}"
             "td,th{border:1px solid #bbb;padding:2px 8px;text-align:left}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Example dialogs</title>"
            f"<style>{style}</style></head><body><h1>Example dialogs (paper Figure 5 analogue)</h1>"
            f"<p>{html.escape(INTRO)}</p>{''.join(body)}</body></html>\n")


def _md(text: str) -> str:
    return text.replace("|", "\\|") or " "


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
