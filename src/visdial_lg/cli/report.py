"""`table`, `tables-markdown`, `figure`: the paper's tables and figures (report/)."""

from __future__ import annotations

from pathlib import Path

from .registry import add_config_argument, command


def _table_arguments(p):
    p.add_argument("n", type=int, choices=range(1, 8), metavar="N")
    p.add_argument("--inputs", nargs="+", required=True, type=Path)
    p.add_argument("--dataset", required=True, choices=["visdial", "demo"])
    p.add_argument("--out", required=True, type=Path)


@command("table", "render one of the paper's tables as CSV", _table_arguments)
def _table(args, config):
    from ..evaluation.human import table7_rows
    from ..report.tables import Statistics, render_table, write_csv

    human = None
    if args.n == 7:
        sheet, key = args.inputs[:2]
        human = table7_rows(key, config.evaluate.human_judgments, sheet)
    write_csv(render_table(args.n, args.inputs, args.dataset, config.evaluate.evalai_result, human,
                           versions=tuple(config.versions), stats=Statistics.of(config.statistics)), args.out)


def _significance_arguments(p):
    p.add_argument("--inputs", nargs="+", required=True, type=Path, help="the compared evaluations (JSON, ranks)")
    p.add_argument("--out", required=True, type=Path)


@command("significance", "paired tests of every LTMI-LG variant against LTMI (CSV)", _significance_arguments)
def _significance(args, config):
    from ..report.significance import significance_frame
    from ..report.tables import Statistics, write_csv

    write_csv(significance_frame(args.inputs, tuple(config.versions), Statistics.of(config.statistics)), args.out)


def _tables_markdown_arguments(p):
    p.add_argument("tables", nargs="+", type=Path)
    p.add_argument("--significance", type=Path, help="results/significance.csv, shown as a last section")
    p.add_argument("--out", required=True, type=Path, help="the Markdown file")
    p.add_argument("--out-html", type=Path, help="the same as an HTML page")


@command("tables-markdown", "all table CSVs as one Markdown file (and HTML page)", _tables_markdown_arguments,
         config=False)
def _tables_markdown(args, config):
    from ..core.files import write_text_atomic
    from ..report.document import html, markdown

    write_text_atomic(args.out, markdown(args.tables, args.significance))
    if args.out_html:
        write_text_atomic(args.out_html, html(args.tables, args.significance))


def _figure_runs_arguments(p, checkpoints_required: bool) -> None:
    """The two figure runs: their val evaluations (ranks beside them) and their checkpoints."""
    p.add_argument("--ltmi", required=True, type=Path, help="val metrics JSON of LTMI (gen), ranks beside it")
    p.add_argument("--lg", required=True, type=Path, help="val metrics JSON of LTMI-LG (gen), ranks beside it")
    p.add_argument("--ltmi-checkpoint", required=checkpoints_required, type=Path,
                   help=None if checkpoints_required else "with --lg-checkpoint and --features: generated answers too")
    p.add_argument("--lg-checkpoint", required=checkpoints_required, type=Path)


def _val_images_arguments(p, out_dir_help: str) -> None:
    """What a figure drawn on val images reads (tokens, features, vocabulary, the images) and its folder."""
    p.add_argument("--tokens", required=True, type=Path, help="val tokens HDF5")
    p.add_argument("--features", required=True, type=Path, help="features HDF5 of the val images")
    p.add_argument("--vocab", required=True, type=Path)
    p.add_argument("--images", required=True, nargs="+", type=Path, metavar="DIR", help="folders of the val images")
    p.add_argument("--out-dir", required=True, type=Path, help=out_dir_help)
    p.add_argument("--device", default="cpu")


def _figure_arguments(p):
    figures = p.add_subparsers(dest="figure", required=True, metavar="FIGURE")
    f = figures.add_parser("attention", help="Figure 4: top-3 regions of LTMI and LTMI-LG per question (PNGs)")
    f.add_argument("--ltmi", required=True, type=Path, help="LTMI checkpoint")
    f.add_argument("--lg", required=True, type=Path, help="LTMI-LG checkpoint")
    _val_images_arguments(f, "writes attention_{i}.png here")
    f = figures.add_parser("dialogs", help="Figure 5: example dialogs with both models' answers (Markdown + HTML)")
    _figure_runs_arguments(f, checkpoints_required=False)
    f.add_argument("--tokens", required=True, type=Path, help="val tokens HDF5")
    f.add_argument("--vocab", required=True, type=Path)
    f.add_argument("--out-md", required=True, type=Path)
    f.add_argument("--out-html", required=True, type=Path)
    f.add_argument("--features", type=Path, help="features HDF5 of the val images")
    f.add_argument("--device", default="cpu")
    for f in figures.choices.values():  # --config after each figure's own arguments, not on `figure`
        add_config_argument(f)


@command("figure", "the paper's qualitative figures on sampled val dialogs (evaluate.figure_samples)",
         _figure_arguments, config=False)
def _figure(args, config):
    FIGURES[args.figure](args, config)


def _attention_figure(args, config):
    from ..report.figures import attention_figures

    attention_figures({"ltmi": args.ltmi, "lg": args.lg}, args.tokens, args.features, args.vocab,
                      args.images, args.out_dir, config.evaluate.figure_samples, device=args.device)


def _dialogs_figure(args, config):
    from ..core.errors import VisdialLGError
    from ..report.figures import Generation, dialog_examples

    generation = None
    if args.ltmi_checkpoint or args.lg_checkpoint or args.features:
        if not (args.ltmi_checkpoint and args.lg_checkpoint and args.features):
            raise VisdialLGError("generated answers need --ltmi-checkpoint, --lg-checkpoint and --features")
        generation = Generation({"ltmi": args.ltmi_checkpoint, "lg": args.lg_checkpoint}, args.features,
                                config.generation.beam_width, args.device)
    dialog_examples({"ltmi": args.ltmi, "lg": args.lg}, args.tokens, args.vocab, args.out_md,
                    args.out_html, config.evaluate.figure_samples, generation=generation)


# `visdial-lg figure NAME`: each figure's handler (each reads only the config its rule passes).
FIGURES = {"attention": _attention_figure, "dialogs": _dialogs_figure}


def _explorer_arguments(p):
    _figure_runs_arguments(p, checkpoints_required=True)
    _val_images_arguments(p, "the explorer folder (index.html, data.js, images/)")


@command("explorer", "the dialog explorer: a static page of sampled val dialogs (explorer.dialogs)",
         _explorer_arguments)
def _explorer(args, config):
    from ..report.explorer import ExplorerInputs, ExplorerSettings, build_explorer

    inputs = ExplorerInputs({"ltmi": args.ltmi_checkpoint, "lg": args.lg_checkpoint},
                            {"ltmi": args.ltmi, "lg": args.lg}, args.tokens, args.features, args.vocab, args.images)
    settings = ExplorerSettings(config.explorer.dialogs, config.explorer.top_regions, config.explorer.top_options,
                                config.generation.beam_width, device=args.device)
    build_explorer(inputs, settings, args.out_dir)
