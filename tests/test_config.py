import json
import subprocess
import sys

import pytest

from visdial_lg.config import ConfigError, TrainConfig, load_config, parse_config_arg, section


def test_real_config_is_valid_and_filled_with_defaults(repo):
    config = load_config(repo / "config.yaml")
    assert config["dataset"] == "visdial"
    assert config["train"]["batch_size"] == 32
    assert config["train"]["decay_factor"] == 0.75  # the schema's default fills the gap
    assert config["features"]["max_boxes"] == 100
    assert config["text"]["min_count"] == 5


@pytest.mark.parametrize("configfile", ["configs/demo.yaml", "tests/configs/micro.yaml"])
def test_demo_configs_are_valid(repo, configfile):
    assert load_config(repo / configfile)["dataset"] == "demo"


@pytest.mark.parametrize(
    "override, message",
    [
        ({"trian": {}}, "unknown config key 'trian'"),
        ({"features": {"wieghts": "random"}}, "unknown config key 'features.wieghts'"),
        ({"train": {"lr": "fast"}}, "config key 'train.lr'"),
        ({"dataset": "coco"}, "config key 'dataset'"),
    ],
)
def test_bad_keys_name_the_culprit(repo, override, message):
    with pytest.raises(ConfigError) as error:
        load_config(repo / "config.yaml", overrides=override)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_typed_view_takes_defaults_from_the_schema():
    train = TrainConfig.from_dict({"epochs": 3}, "train")
    assert train.epochs == 3 and train.batch_size == 32 and train.betas == [0.9, 0.997]
    assert section({"text": {}}, "text")["max_caption_len"] == 40


def test_config_argument_accepts_inline_json_and_files(repo):
    assert parse_config_arg(json.dumps({"text": {"min_count": 2}})) == {"text": {"min_count": 2}}
    assert parse_config_arg(str(repo / "tests/configs/micro.yaml"))["dataset"] == "demo"


def test_cli_reports_one_line_errors(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "visdial_lg", "make-demo", "--out", str(tmp_path),
         "--config", json.dumps({"demo": {"sede": 1}})],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    message = result.stderr.strip()
    assert "\n" not in message
    assert message.startswith("visdial-lg: error: unknown config key 'demo.sede' (known keys: image_height, ")
