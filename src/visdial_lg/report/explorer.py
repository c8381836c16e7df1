"""The dialog explorer: `results/explorer/`, one static page with its data beside it.

The folder opens from disk with no server, works offline and can be shared as it is:
- `index.html`, `explorer.js`, `explorer.css`: the page (plain HTML, CSS and JavaScript,
  copied from the package's `resources/explorer/`);
- `data.js`: the sampled dialogs as one JavaScript assignment (`window.EXPLORER_DATA = ...`;
  a page opened from disk may not fetch a JSON file beside it, but it may load a script);
- `images/`: the sampled dialogs' images, copied from the image folder.

For each sampled val dialog of the main version (the figure runs, LTMI and LTMI-LG with the
generative decoder) and each round, the data holds: the question, the human answer, each
model's rank of the ground truth, its top-ranked options and its generated answer, and the
top regions of three distributions over the image's regions: LTMI's attention pooling, LG's
prior p(v|x) (Eq. 1) and LG's posterior p(v|x, y) (Eq. 2, with the human answer). Two flags per round drive the page's
filters (docs/evaluation.md, "The dialog explorer"):
- `models_disagree`: LTMI and LTMI-LG retrieve different answers (rank-1 options differ);
- `prior_posterior_disagree`: LG's prior and posterior put their largest weight on
  different regions.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import h5py
import numpy as np

from ..core.errors import InputFormatError
from ..core.files import write_text_atomic
from ..evaluation.human import SYSTEMS, answer_text, saved_ranks
from ..features.images import list_image_folders
from ..text.vocab import Vocabulary
from .figures import RANK_COLOURS, FigureModels, generate_answers

PAGE_FILES = ("index.html", "explorer.js", "explorer.css")  # in resources/explorer/
DATA_FILE = "data.js"
DATA_VARIABLE = "EXPLORER_DATA"
# The distributions over regions the page draws: (key, model, which distribution, title).
VIEWS = (("ltmi", "ltmi", "prior", f"{SYSTEMS['ltmi']}: attention pooling"),
         ("lg_prior", "lg", "prior", f"{SYSTEMS['lg']}: prior p(v|x)"),
         ("lg_posterior", "lg", "posterior", f"{SYSTEMS['lg']}: posterior p(v|x,y), with the answer"))


@dataclass(frozen=True)
class ExplorerInputs:
    """What the explorer is built from: the two figure runs' checkpoints and val evaluations
    ({"ltmi": .., "lg": ..}; generative ranks beside each metrics JSON), the val tokens,
    features and vocabulary, and the folders of the val images."""

    checkpoints: dict[str, Path]
    evaluations: dict[str, Path]
    tokens: Path
    features: Path
    vocab: Path
    image_dirs: list[Path]


@dataclass(frozen=True)
class ExplorerSettings:
    dialogs: int  # sampled val dialogs
    top_regions: int
    top_options: int
    beam_width: int  # of the generated answers
    seed: int = 0
    device: str = "cpu"


def sample_dialogs(total: int, count: int, seed: int) -> list[int]:
    """`count` dialog indices (all if fewer), sorted, the same for a given seed."""
    return sorted(random.Random(seed).sample(range(total), min(count, total)))


def build_explorer(inputs: ExplorerInputs, settings: ExplorerSettings, out_dir: Path) -> dict:
    """Write the explorer folder `out_dir`; returns the data the page shows."""
    vocab = Vocabulary.load(inputs.vocab)
    with h5py.File(inputs.tokens, "r") as f:
        image_ids, num_rounds = f["image_id"][:], f["num_rounds"][:]
        q_pool, q_len, a_pool, a_len = (f["question_tokens"][:], f["question_len"][:], f["answer_tokens"][:],
                                        f["answer_len"][:])
        c_tok, c_len = f["caption_tokens"][:], f["caption_len"][:]
        questions, answers, options, gt_index = (f["question"][:], f["answer"][:], f["answer_options"][:],
                                                 f["gt_index"][:])
    ranks = {}
    for name, path in inputs.evaluations.items():
        ids, ranks[name] = saved_ranks(path)
        if not np.array_equal(ids, image_ids):
            raise InputFormatError(f"the {SYSTEMS[name]} ranks of {path} do not follow the dialogs of {inputs.tokens}")
    images = {entry.image_id: entry.path for entry in list_image_folders(inputs.image_dirs)}
    dialogs = sample_dialogs(len(image_ids), settings.dialogs, settings.seed)
    missing = [int(image_ids[d]) for d in dialogs if int(image_ids[d]) not in images]
    if missing:
        raise InputFormatError(f"image {missing[0]} (a sampled val dialog) is in none of "
                               f"{', '.join(map(str, inputs.image_dirs))}")
    figure_models = FigureModels(inputs.checkpoints, inputs.tokens, inputs.features, settings.device)
    regions = _region_distributions(figure_models, dialogs)
    generated = generate_answers(figure_models, vocab, dialogs, settings.beam_width)

    def text(pool, lengths, index) -> str:
        return answer_text(vocab, pool, lengths, int(index))

    shown = []
    for i, d in enumerate(dialogs):
        image_id = int(image_ids[d])
        rounds = []
        for r in range(int(num_rounds[d])):
            models = {}
            for name, rank in ranks.items():
                order = np.argsort(rank[d, r], kind="stable")[: settings.top_options]
                models[name] = {"gt_rank": int(rank[d, r, gt_index[d, r]]),
                                "top_options": [text(a_pool, a_len, options[d, r, o]) for o in order],
                                "generated": generated[name][d][r]}
            views = {key: _top(regions[key][i][r], settings.top_regions) for key, *_ in VIEWS}
            rounds.append({
                "question": text(q_pool, q_len, questions[d, r]),
                "answer": text(a_pool, a_len, answers[d, r]),
                "models": models,
                "regions": views,
                "models_disagree": bool(ranks["ltmi"][d, r].argmin() != ranks["lg"][d, r].argmin()),
                "prior_posterior_disagree": views["lg_prior"][0][0] != views["lg_posterior"][0][0],
            })
        shown.append({"dialog": d, "image_id": image_id,
                      "image": f"images/{image_id}{images[image_id].suffix.lower()}",
                      "size": regions["size"][i], "boxes": regions["boxes"][i],
                      "caption": " ".join(vocab.to_words(c_tok[d, : c_len[d]])), "rounds": rounds})
    data = {"models": {name: SYSTEMS[name] for name in ("ltmi", "lg")},
            "views": [{"key": key, "title": title} for key, _, _, title in VIEWS],
            "rank_colours": list(RANK_COLOURS),
            "beam_width": settings.beam_width, "dialogs": shown}
    _write_folder(out_dir, data, {entry["image"]: images[entry["image_id"]] for entry in shown})
    return data


def _region_distributions(figure_models: FigureModels, dialogs: list[int]) -> dict:
    """Per sampled dialog: its regions' boxes and image size (as the features file has them)
    and, for each view, the weights [R][valid regions] of its distribution."""
    import torch

    batch = figure_models.batch(dialogs)
    with torch.no_grad():
        distributions = {name: model.region_distributions(batch) for name, model in figure_models.models.items()}
    out: dict = {"boxes": [], "size": []}
    out.update({key: [] for key, *_ in VIEWS})
    for i in range(len(dialogs)):
        valid = int(batch["num_boxes"][i])
        out["boxes"].append(np.round(batch["boxes"][i, :valid].double().cpu().numpy(), 1).tolist())
        out["size"].append([float(batch["img_w"][i]), float(batch["img_h"][i])])
        for key, model, which, _ in VIEWS:
            weights = distributions[model][which][i, :, :valid].float().cpu().numpy()  # [R, valid]
            out[key].append(weights)
    return out


def _top(weights: np.ndarray, k: int) -> list[list]:
    """The k largest weights of one round as [[region, weight], ...], largest first (ties:
    the lower region index first)."""
    order = np.argsort(-weights, kind="stable")[:k]
    return [[int(j), round(float(weights[j]), 4)] for j in order]


def _write_folder(out_dir: Path, data: dict, images: dict[str, Path]) -> None:
    """The page, its data and its images; images of an earlier build are removed first, so
    the folder holds exactly what `data` names."""
    out_dir.mkdir(parents=True, exist_ok=True)
    image_dir = out_dir / "images"
    if image_dir.exists():
        shutil.rmtree(image_dir)
    image_dir.mkdir()
    for name, source in images.items():
        shutil.copyfile(source, out_dir / name)
    page = resources.files("visdial_lg") / "resources" / "explorer"
    for name in PAGE_FILES:
        write_text_atomic(out_dir / name, (page / name).read_text())
    write_text_atomic(out_dir / DATA_FILE, f"window.{DATA_VARIABLE} = {json.dumps(data, separators=(',', ':'))};\n")


def read_data(out_dir: Path) -> dict:
    """The data of a built explorer folder (for tests and scripts)."""
    text = (Path(out_dir) / DATA_FILE).read_text()
    prefix = f"window.{DATA_VARIABLE} = "
    if not text.startswith(prefix):
        raise InputFormatError(f"{out_dir / DATA_FILE}: not an explorer data file")
    return json.loads(text[len(prefix):].rstrip().rstrip(";"))
