"""Parameter counts at the real size (d = 512, 2 blocks, V = 11,322) against the
release's breakdown (docs/upstream.md#parameter-counts), and `visdial-lg model-info`."""

import json

import pytest
import torch

from visdial_lg.cli import main
from visdial_lg.core.config import LGConfig, ModelConfig
from visdial_lg.models.ltmi import build_model, count_parameters
from visdial_lg.core.runs import parse_run_id

RELEASE = {  # docs/upstream.md#parameter-counts
    "embedding": 3_396_600, "question_encoder": 10_159_616, "history_encoder": 10_159_616,
    "image_encoder": 2_543_616, "attention_blocks": 4_752_384, "summary_and_context": 1_314_818,
    "disc_decoder": 10_159_616, "gen_decoder": 9_577_530,
}
RELEASE_TOTAL = {"disc": 42_486_266, "gen": 41_904_180, "multi": 52_063_796}


def counts(run: str) -> dict:
    torch.manual_seed(0)
    model = build_model(parse_run_id(run), 11322, ModelConfig.from_dict({}, "model"), LGConfig.from_dict({}))
    return count_parameters(model)


@pytest.mark.parametrize("decoder", ["disc", "gen", "multi"])
def test_ltmi_matches_the_release_and_lg_matches_ltmi_at_inference(decoder):
    ltmi = counts(f"v1.0-ltmi-{decoder}")
    assert ltmi["total"] == ltmi["inference"] == RELEASE_TOTAL[decoder]
    for name, value in ltmi["components"].items():
        used = name != "answer_encoder" and (decoder == "multi" or not name.endswith("_decoder") or name.startswith(decoder))
        assert value == (RELEASE[name] if used else 0), name
    lg = counts(f"v1.0-lg_attn_kl-{decoder}")
    assert lg["inference"] == ltmi["total"]  # paper §4.1: "the same as LTMI"
    assert lg["total"] == ltmi["total"] + RELEASE["question_encoder"]  # + the answer encoder (training only)


def test_model_info_command(capsys):
    assert main(["model-info", "--run", "v0.9-lg_image_kl-disc", "--config", '{"model": {"blocks": 1}}']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["run"] == "v0.9-lg_image_kl-disc" and info["vocab_size"] == 11322
    assert info["inference"] == RELEASE_TOTAL["disc"] - RELEASE["attention_blocks"] // 2
    assert main(["model-info", "--run", "v1.0-lg_nope-disc"]) == 2
    assert "bad run id 'v1.0-lg_nope-disc'" in capsys.readouterr().err
