"""`vocab`, `glove`, `tokenize`: the text stages (text/)."""

from __future__ import annotations

from ..core.runs import VERSIONS
from .registry import command


def _vocab_arguments(p):
    p.add_argument("--train-json", required=True)
    p.add_argument("--version", default="v1.0", choices=VERSIONS)
    p.add_argument("--out", required=True, help="vocabulary JSON")
    p.add_argument("--glove", help="GloVe text file (word + 300 floats per line)")
    p.add_argument("--glove-out", help="where to write the GloVe-initialised embedding (.pt)")


@command("vocab", "build the vocabulary from a train split", _vocab_arguments)
def _vocab(args, config):
    from ..text.vocab import build_vocabulary_file

    build_vocabulary_file(args.train_json, args.out, config.text, glove_path=args.glove, glove_out=args.glove_out,
                          version=args.version)


def _glove_arguments(p):
    p.add_argument("--vocab", required=True, help="vocabulary JSON")
    p.add_argument("--glove", required=True, help="GloVe text file (word + 300 floats per line)")
    p.add_argument("--out", required=True, help="embedding state ({'weight': [V, 300]}) as .pt")


@command("glove", "the GloVe-initialised embedding table of a vocabulary", _glove_arguments, config=False)
def _glove(args, config):
    from ..text.vocab import Vocabulary, save_glove_embedding

    save_glove_embedding(args.glove, Vocabulary.load(args.vocab), args.out)


def _tokenize_arguments(p):
    p.add_argument("--json", required=True, help="VisDial dialogs JSON")
    p.add_argument("--vocab", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--version", required=True, choices=VERSIONS)
    p.add_argument("--split", required=True, choices=["train", "val", "test"])
    p.add_argument("--dense", help="dense annotations JSON (v1.0 val)")


@command("tokenize", "tokenize one VisDial split into the tokens HDF5", _tokenize_arguments)
def _tokenize(args, config):
    from ..text.tokens import tokenize_split

    tokenize_split(args.json, args.vocab, args.out, config.text, version=args.version, split=args.split,
                   dense_path=args.dense)
