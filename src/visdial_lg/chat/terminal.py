"""`visdial-lg chat`: open a dialog session on an image, then answer questions typed in the
terminal (`Q1> `; an empty line or end of input ends it) or those of a questions file
(a JSON list of strings; the rounds are printed as JSON)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, TextIO

from ..core.device import resolve_device
from ..core.errors import InputFormatError
from ..core.files import read_json
from ..core.runs import parse_run_id
from ..text.vocab import Vocabulary
from .answers import AnswerPool, PoolScorer
from .dialog import MAX_ROUNDS, DialogSession, Widths
from .files import RunFiles
from .regions import Extraction, RegionExtractor


def read_questions(path: str | Path) -> list[str]:
    """The questions of a questions file: a JSON list of 1..MAX_ROUNDS non-empty strings."""
    data = read_json(path, "questions file")
    if not isinstance(data, list) or not all(isinstance(q, str) for q in data):
        raise InputFormatError(f"questions file {path} must hold a JSON list of strings")
    if not data:
        raise InputFormatError(f"questions file {path} holds no question")
    for i, question in enumerate(data, 1):
        if not question.strip():
            raise InputFormatError(f"questions file {path}: question {i} is empty")
    if len(data) > MAX_ROUNDS:
        raise InputFormatError(f"questions file {path} holds {len(data)} questions; a dialog has at most "
                               f"{MAX_ROUNDS} (VisDial's rounds, all the model's history takes)")
    return data


def open_session(run: str, image: str | Path, *, beam_width: int, directory: str | Path = ".", caption: str = "",
                 pool_size: int | None = None, weights: str | Path | None = None, weights_setting: str | None = None,
                 device: str = "cpu") -> DialogSession:
    """Everything a dialog with run `run` of pipeline folder `directory` about `image` needs:
    the trained model, its vocabulary, the image's regions and the train answer pool. Trained
    detector weights: the file `weights`, else that of `features.weights` = `weights_setting`."""
    from ..training.checkpoint import load_trained_model

    files = RunFiles.of(run, directory)
    image = Path(image)
    if not image.is_file():
        raise InputFormatError(f"image file {image} not found")
    files.check_checkpoint()
    extraction = Extraction.of_run(files)  # checked before any heavy loading
    dev = resolve_device(device)
    model, spec, meta = load_trained_model(files.checkpoint, dev)
    vocab = Vocabulary.load(files.vocab)
    if len(vocab) != meta["vocab_size"]:
        raise InputFormatError(f"{files.vocab} has {len(vocab)} words, the checkpoint {files.checkpoint} was "
                               f"trained with {meta['vocab_size']}")
    regions = RegionExtractor(extraction, dev, weights or files.weights_file(weights_setting)).regions(image)
    pool = AnswerPool.from_tokens(files.train_tokens, vocab, pool_size)
    return DialogSession(model, spec.run_id, vocab, regions, pool, PoolScorer.of_run(model, spec, pool, dev),
                         Widths.of_tokens(files.train_tokens), beam_width, caption)


def describe(session: DialogSession) -> dict:
    """What the rounds were answered with: run, image, caption, beam width, answer pool."""
    r = session.regions
    return {"run": session.run, "image": str(r.path), "image_size": [r.width, r.height], "regions": r.num_boxes,
            "caption": session.caption, "beam_width": session.beam_width,
            "answer_pool": {"answers": len(session.pool), "distinct_train_answers": session.pool.distinct,
                            "scored_by": session.scorer.scored_by}}


def answer_questions(session: DialogSession, questions: list[str]) -> dict:
    """The session's description and every question's round, in order."""
    return {**describe(session), "rounds": [session.ask(q) for q in questions]}


def format_round(result: dict) -> str:
    """A round for the terminal: generated answer, retrieved answers, regions."""
    lines = []
    if result["unknown_words"]:
        lines.append(f"  (not in the vocabulary, read as <UNK>: {', '.join(result['unknown_words'])})")
    generated = result["generated"]
    if generated is None:
        generated = f"(not generated: {result['generation_unavailable']})"
    lines.append(f"A{result['round']}: {generated or '(an empty answer: the decoder ends it at once)'}")
    lines.append("  retrieved: " + " | ".join(f"{a['answer']} ({a['score']:.2f})" for a in result["retrieved"]))
    lines.append("  looked at: " + " | ".join(f"region {g['region']} [{', '.join(f'{v:g}' for v in g['box'])}] "
                                              f"{g['weight']:.2f}" for g in result["regions"]))
    return "\n".join(lines)


def interactive(session: DialogSession, read: Callable[[str], str] = input, out: TextIO | None = None,
                echo: bool = False) -> list[dict]:
    """Ask `read`'s questions until an empty line, end of input (or Ctrl-C) or the last round;
    the rounds go to `out` (default: stdout). `echo`: repeat each question after its prompt
    (input from a pipe, which the terminal does not show)."""
    out = out or sys.stdout
    d = describe(session)
    pool = d["answer_pool"]
    print(f"{d['run']} on {d['image']} ({d['image_size'][0]}x{d['image_size'][1]} pixels, {d['regions']} regions); "
          f"{pool['answers']} train answers scored by {pool['scored_by']}", file=out)
    print(f"caption: {session.caption or '(none)'}; ask a question (an empty line ends the dialog)", file=out)
    rounds = []
    try:
        while not session.done:
            question = read(f"Q{len(rounds) + 1}> ")
            if echo:
                print(question, file=out)
            if not question.strip():
                break
            rounds.append(session.ask(question))
            print(format_round(rounds[-1]), file=out, flush=True)
    except (EOFError, KeyboardInterrupt):  # end of input, or Ctrl-C: the dialog ends, nothing to resume
        print(file=out)
    if session.done:
        print(f"(the dialog has its {MAX_ROUNDS} rounds, all the model's history takes)", file=out)
    return rounds


def chat_command(run: str, image: str | Path, *, beam_width: int, directory: str | Path = ".", caption: str = "",
                 questions: str | Path | None = None, figure: str | Path | None = None, pool_size: int | None = None,
                 weights: str | Path | None = None, weights_setting: str | None = None,
                 device: str = "cpu") -> list[dict]:
    """`visdial-lg chat`: the questions file's rounds as JSON on stdout, or the interactive dialog."""
    listed = read_questions(questions) if questions is not None else None
    session = open_session(run, image, directory=directory, caption=caption, beam_width=beam_width,
                           pool_size=pool_size, weights=weights, weights_setting=weights_setting, device=device)
    if listed is not None:
        result = answer_questions(session, listed)
        rounds = result["rounds"]
        print(json.dumps(result, indent=1))
    else:
        rounds = interactive(session, echo=not sys.stdin.isatty())
    if session.generation_error:
        print(f"visdial-lg chat: run {session.run}: {session.generation_error}; each round's history holds "
              f"its first retrieved answer", file=sys.stderr)
    if figure is not None:
        if rounds:
            from .figure import draw_rounds

            draw_rounds(session.regions, rounds, parse_run_id(session.run).model, session.run, figure)
        else:
            print("visdial-lg chat: no round was asked: no figure written", file=sys.stderr)
    return rounds
