"""`visdial-lg <command>`: argument parsing only; every command calls one stage module.

Stage modules are imported inside the handlers so that `visdial-lg --help` and
the light commands start without importing torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from .core.config import parse_config_arg
from .core.errors import VisdialLGError, one_line
from .core.runs import GROUNDING_VARIANTS, VERSIONS

_COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {}


def command(name: str):
    def register(fn):
        _COMMANDS[name] = fn
        return fn

    return register


def _config(args: argparse.Namespace) -> dict:
    return parse_config_arg(args.config) if getattr(args, "config", None) else {}


# --------------------------------------------------------------------------- data


@command("download")
def _download(args):
    from .download.fetch import download

    download(args.url, args.out, sha256=args.sha256, size=args.size, lock=args.lock, name=args.name,
             retries=args.retries, timeout_s=args.timeout)


@command("unzip")
def _unzip(args):
    from .download.archive import safe_extract_zip

    safe_extract_zip(args.zip, args.out, args.manifest)


@command("make-demo")
def _make_demo(args):
    from .core.config import DemoConfig

    cfg = DemoConfig.from_dict(_config(args).get("demo", {}), "demo")
    from .demo.make import make_demo

    make_demo(cfg, args.out)


@command("vocab")
def _vocab(args):
    from .core.config import TextConfig
    from .text.vocab import build_vocabulary_file

    build_vocabulary_file(
        args.train_json, args.out, TextConfig.from_dict(_config(args).get("text", {}), "text"),
        glove_path=args.glove, glove_out=args.glove_out, version=args.version,
    )


@command("glove")
def _glove(args):
    from .text.vocab import Vocabulary, save_glove_embedding

    save_glove_embedding(args.glove, Vocabulary.load(args.vocab), args.out)


@command("tokenize")
def _tokenize(args):
    from .core.config import TextConfig
    from .text.tokens import tokenize_split

    tokenize_split(
        args.json, args.vocab, args.out, TextConfig.from_dict(_config(args).get("text", {}), "text"),
        version=args.version, split=args.split, dense_path=args.dense,
    )


# ------------------------------------------------------------------------ training


@command("train")
def _train(args):
    from .core.config import validate
    from .training.loop import TrainInputs, train

    inputs = TrainInputs(tokens=args.tokens, features=args.features, vocab=args.vocab, glove=args.glove)
    train(args.run, inputs, args.out_dir, validate(_config(args)), device=args.device)


@command("model-info")
def _model_info(args):
    import json

    from .models.ltmi import model_info

    print(json.dumps(model_info(args.run, args.vocab_size, _config(args)), indent=1))


# ----------------------------------------------------------------------- features


@command("extract")
def _extract(args):
    import json

    from .features.extract import extract_command

    if args.dialogs and not args.image_dir:
        raise VisdialLGError("extract --dialogs needs --image-dir DIR [DIR ...] to find the images in")
    summary = extract_command(args.out, args.weights, _config(args), image_dirs=args.images or args.image_dir,
                              dialogs=args.dialogs, boxes=args.boxes, shard=args.shard, device=args.device)
    print(json.dumps(summary))


@command("merge-features")
def _merge_features(args):
    from .features.merge import merge_shards

    merge_shards(args.shards, args.out, virtual=args.virtual)


@command("import-features")
def _import_features(args):
    from .features.merge import import_ltmi

    import_ltmi(args.src, args.out, storage_dtype=args.storage_dtype)


@command("evaluate")
def _evaluate(args):
    from .core.config import section
    from .evaluation.evaluate import EvalInputs, evaluate

    cfg = section(_config(args), "evaluate")
    inputs = EvalInputs(
        checkpoint=args.checkpoint, tokens=args.tokens, features=args.features, split=args.split,
        grounding=args.grounding, oracle=args.oracle, test_answers=args.test_answers,
        submission=args.submission,
    )
    evaluate(inputs, args.out, batch_size=cfg["batch_size"], device=args.device)


@command("grounding")
def _grounding(args):
    from .core.config import section
    from .evaluation.grounding import grounding_accuracy, load_annotations

    cfg = section(_config(args), "evaluate")
    annotations, source = load_annotations(args.coco_instances, args.grounding, args.tokens, args.vocab)
    grounding_accuracy(args.checkpoint, args.tokens, args.features, args.out, annotations=annotations,
                       source=source, samples=cfg["grounding_samples"], batch_size=cfg["batch_size"],
                       device=args.device)


@command("human-eval-sheet")
def _human_eval_sheet(args):
    from .core.config import section
    from .evaluation.human import write_sheet

    cfg = section(_config(args), "evaluate")
    write_sheet({"ltmi": args.ltmi, "lg": args.lg}, args.tokens, args.vocab, args.sheet, args.key,
                samples=cfg["human_eval_samples"])


@command("table")
def _table(args):
    from .core.config import validate
    from .evaluation.human import table7_rows
    from .report.tables import render_table, write_csv

    config = validate(_config(args))
    cfg = config["evaluate"]
    human = None
    if args.n == 7:
        sheet, key = args.inputs[:2]
        human = table7_rows(key, cfg["human_judgments"], sheet)
    write_csv(render_table(args.n, args.inputs, args.dataset, cfg["evalai_result"], human,
                           versions=tuple(config["versions"])), args.out)


@command("tables-markdown")
def _tables_markdown(args):
    from .report.tables import markdown

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(args.tables))


@command("figure")
def _figure(args):
    from .core.config import section
    from .report.figures import attention_figures, dialog_examples

    count = section(_config(args), "evaluate")["figure_samples"]
    if args.figure == "attention":
        attention_figures({"ltmi": args.ltmi, "lg": args.lg}, args.tokens, args.features, args.vocab,
                          args.images, args.out_dir, count, device=args.device)
    else:
        dialog_examples({"ltmi": args.ltmi, "lg": args.lg}, args.tokens, args.vocab, args.out_md,
                        args.out_html, count)


# ----------------------------------------------------------------------- argparse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visdial-lg",
        description="visdial-lg: the stages of the LTMI-LG pipeline (each a Snakemake rule).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str, config: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        if config:
            p.add_argument("--config", help="config as inline JSON (as the rules pass it) or a YAML file")
        return p

    p = add("download", "download a file, resumable (HTTP Range) and verified (size, sha256)", config=False)
    p.add_argument("url", help="http://, https:// or file:// URL")
    p.add_argument("--out", required=True, help="destination file (written as OUT.part until verified)")
    p.add_argument("--sha256", help="published sha256; without it the --lock file pins it on first use")
    p.add_argument("--size", type=int, help="expected size in bytes")
    p.add_argument("--lock", help="JSON checksum lock file (e.g. resources/checksums.lock)")
    p.add_argument("--name", help="entry name in the lock file (default: the file name of --out)")
    p.add_argument("--retries", type=int, default=5, help="retries without progress before giving up")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a retry")

    p = add("unzip", "extract a zip safely (no absolute/.. paths, no symlinks; CRC-checked)", config=False)
    p.add_argument("zip")
    p.add_argument("--out", required=True, help="folder to create with the zip's content")
    p.add_argument("--manifest", required=True, help="manifest JSON listing the extracted files")

    p = add("make-demo", "write the synthetic grounded visual-dialog dataset")
    p.add_argument("--out", required=True, help="output folder (e.g. resources/demo)")

    p = add("vocab", "build the vocabulary from a train split")
    p.add_argument("--train-json", required=True)
    p.add_argument("--version", default="v1.0", choices=VERSIONS)
    p.add_argument("--out", required=True, help="vocabulary JSON")
    p.add_argument("--glove", help="GloVe text file (word + 300 floats per line)")
    p.add_argument("--glove-out", help="where to write the GloVe-initialised embedding (.pt)")

    p = add("glove", "the GloVe-initialised embedding table of a vocabulary", config=False)
    p.add_argument("--vocab", required=True, help="vocabulary JSON")
    p.add_argument("--glove", required=True, help="GloVe text file (word + 300 floats per line)")
    p.add_argument("--out", required=True, help="embedding state ({'weight': [V, 300]}) as .pt")

    p = add("tokenize", "tokenize one VisDial split into the tokens HDF5")
    p.add_argument("--json", required=True, help="VisDial dialogs JSON")
    p.add_argument("--vocab", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--version", required=True, choices=VERSIONS)
    p.add_argument("--split", required=True, choices=["train", "val", "test"])
    p.add_argument("--dense", help="dense annotations JSON (v1.0 val)")

    p = add("train", "train one run; resumes from OUT_DIR/last.pt (launch with torchrun for several GPUs)")
    # --run-id: torchrun's own parser rejects `--run` (ambiguous with its --run-path).
    p.add_argument("--run", "--run-id", dest="run", required=True,
                   help="run id VERSION-MODEL-DECODER, e.g. v1.0-lg_attn_kl-disc (write --run-id under torchrun)")
    p.add_argument("--tokens", required=True, help="train tokens HDF5")
    p.add_argument("--features", required=True, help="features HDF5 of the train images")
    p.add_argument("--vocab", required=True, help="vocabulary JSON")
    p.add_argument("--glove", help="GloVe-initialised embedding (.pt) from `visdial-lg vocab`")
    p.add_argument("--out-dir", required=True, help="run folder (e.g. results/runs/RUN)")
    p.add_argument("--device", help="cpu | cuda (default: cuda when available); torchrun: one GPU per rank")

    p = add("model-info", "parameter counts of a run's model (total, at inference, per component) as JSON")
    p.add_argument("--run", required=True, help="run id VERSION-MODEL-DECODER, e.g. v1.0-lg_attn_kl-disc")
    p.add_argument("--vocab-size", type=int, default=11322, help="vocabulary size (LTMI's v1.0: 11322)")

    p = add("extract", "bottom-up-attention region features of an image set into a feature HDF5 (shard)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", nargs="+", metavar="DIR", help="every image in these folders")
    source.add_argument("--dialogs", metavar="JSON", help="the images of a VisDial dialogs JSON (with --image-dir)")
    p.add_argument("--image-dir", nargs="+", metavar="DIR", help="folders holding the dialogs' images")
    p.add_argument("--weights", required=True, help="detector weights file, or 'random'")
    p.add_argument("--out", required=True, help="feature HDF5 (written as OUT.partial until complete)")
    p.add_argument("--boxes", help="JSON of given boxes per image id: features for these boxes instead")
    p.add_argument("--shard", default="0/1", help="i/n: the i-th (0-based) of n contiguous blocks of images")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")

    p = add("merge-features", "merge extraction shards into one feature HDF5", config=False)
    p.add_argument("shards", nargs="+", metavar="SHARD")
    p.add_argument("--out", required=True)
    p.add_argument("--virtual", action="store_true", help="HDF5 virtual datasets over the shards (no copy)")

    p = add("import-features", "import an LTMI feature HDF5 in place of extraction", config=False)
    p.add_argument("src", metavar="SRC", help="LTMI *_resnet101_faster_rcnn_genome_100.h5")
    p.add_argument("--out", required=True)
    p.add_argument("--storage-dtype", choices=["float32", "float16"], help="features dtype (default float32)")

    p = add("evaluate", "metrics of a trained run on one split, with one grounding variant")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--tokens", required=True, type=Path)
    p.add_argument("--features", required=True, type=Path)
    p.add_argument("--split", required=True, choices=["train", "val", "test"])
    p.add_argument("--grounding", default="prior", choices=GROUNDING_VARIANTS)
    p.add_argument("--oracle", type=Path, help="grounding annotations JSON (for --grounding oracle)")
    p.add_argument("--test-answers", type=Path, help="held-back test answers (the demo)")
    p.add_argument("--submission", type=Path, help="where to write the EvalAI submission (test)")
    p.add_argument("--out", required=True, type=Path, help="metrics JSON")
    p.add_argument("--device", default="cpu")

    p = add("grounding", "grounding accuracy of a run's top-3 regions (Table 3)")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--tokens", required=True, type=Path)
    p.add_argument("--features", required=True, type=Path)
    p.add_argument("--vocab", type=Path, help="vocabulary (to read the rounds' words)")
    p.add_argument("--coco-instances", type=Path, help="COCO-format instances of the split's images")
    p.add_argument("--grounding", type=Path, help="round boxes JSON, instead of COCO instances")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--device", default="cpu")

    p = add("human-eval-sheet", "the blinded human-evaluation sheet of Table 7")
    p.add_argument("--ltmi", required=True, type=Path, help="val metrics JSON of LTMI (gen)")
    p.add_argument("--lg", required=True, type=Path, help="val metrics JSON of LTMI-LG (gen)")
    p.add_argument("--tokens", required=True, type=Path)
    p.add_argument("--vocab", required=True, type=Path)
    p.add_argument("--sheet", required=True, type=Path)
    p.add_argument("--key", required=True, type=Path)

    p = add("table", "render one of the paper's tables as CSV")
    p.add_argument("n", type=int, choices=range(1, 8), metavar="N")
    p.add_argument("--inputs", nargs="+", required=True, type=Path)
    p.add_argument("--dataset", required=True, choices=["visdial", "demo"])
    p.add_argument("--out", required=True, type=Path)

    p = add("tables-markdown", "all table CSVs as one Markdown file", config=False)
    p.add_argument("tables", nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path)

    p = add("figure", "the paper's qualitative figures on sampled val dialogs (evaluate.figure_samples)", config=False)
    figures = p.add_subparsers(dest="figure", required=True, metavar="FIGURE")
    f = figures.add_parser("attention", help="Figure 4: top-3 regions of LTMI and LTMI-LG per question (PNGs)")
    f.add_argument("--ltmi", required=True, type=Path, help="LTMI checkpoint")
    f.add_argument("--lg", required=True, type=Path, help="LTMI-LG checkpoint")
    f.add_argument("--tokens", required=True, type=Path, help="val tokens HDF5")
    f.add_argument("--features", required=True, type=Path, help="features HDF5 of the val images")
    f.add_argument("--vocab", required=True, type=Path)
    f.add_argument("--images", required=True, nargs="+", type=Path, metavar="DIR", help="folders of the val images")
    f.add_argument("--out-dir", required=True, type=Path, help="writes attention_{i}.png here")
    f.add_argument("--device", default="cpu")
    f = figures.add_parser("dialogs", help="Figure 5: example dialogs with both models' answers (Markdown + HTML)")
    f.add_argument("--ltmi", required=True, type=Path, help="val metrics JSON of LTMI (gen), ranks beside it")
    f.add_argument("--lg", required=True, type=Path, help="val metrics JSON of LTMI-LG (gen), ranks beside it")
    f.add_argument("--tokens", required=True, type=Path, help="val tokens HDF5")
    f.add_argument("--vocab", required=True, type=Path)
    f.add_argument("--out-md", required=True, type=Path)
    f.add_argument("--out-html", required=True, type=Path)
    for f in figures.choices.values():
        f.add_argument("--config", help="config as inline JSON (as the rules pass it) or a YAML file")

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _COMMANDS[args.command](args)
    except VisdialLGError as e:
        print(f"visdial-lg: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        # A stage that knows what it saved says so (train); otherwise only saved work resumes.
        kept = e.args[0] if e.args else "work already saved (extracted rows, finished epochs) resumes on the next run"
        print(f"visdial-lg: interrupted; {kept}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
