"""`train`, `model-info`: training a run (training/) and its model's size (models/)."""

from __future__ import annotations

from .registry import command


def _train_arguments(p):
    # --run-id: torchrun's own parser rejects `--run` (ambiguous with its --run-path).
    p.add_argument("--run", "--run-id", dest="run", required=True,
                   help="run id VERSION-MODEL-DECODER, e.g. v1.0-lg_attn_kl-disc (write --run-id under torchrun)")
    p.add_argument("--tokens", required=True, help="train tokens HDF5")
    p.add_argument("--features", required=True, help="features HDF5 of the train images")
    p.add_argument("--vocab", required=True, help="vocabulary JSON")
    p.add_argument("--glove", help="GloVe-initialised embedding (.pt) from `visdial-lg vocab`")
    p.add_argument("--out-dir", required=True, help="run folder (e.g. results/runs/RUN)")
    p.add_argument("--device", help="cpu | cuda (default: cuda when available); torchrun: one GPU per rank")


@command("train", "train one run; resumes from OUT_DIR/last.pt (launch with torchrun for several GPUs)",
         _train_arguments)
def _train(args, config):
    from ..training.loop import TrainInputs, train

    inputs = TrainInputs(tokens=args.tokens, features=args.features, vocab=args.vocab, glove=args.glove)
    train(args.run, inputs, args.out_dir, config, device=args.device)


def _model_info_arguments(p):
    p.add_argument("--run", required=True, help="run id VERSION-MODEL-DECODER, e.g. v1.0-lg_attn_kl-disc")
    p.add_argument("--vocab-size", type=int, default=11322, help="vocabulary size (LTMI's v1.0: 11322)")


@command("model-info", "parameter counts of a run's model (total, at inference, per component) as JSON",
         _model_info_arguments)
def _model_info(args, config):
    import json

    from ..models.ltmi import model_info

    print(json.dumps(model_info(args.run, args.vocab_size, config.model, config.lg), indent=1))
