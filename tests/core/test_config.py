import json
import subprocess
import sys

import pytest
import yaml

from visdial_lg.core.config import (
    RESULT_NEUTRAL_KEYS, Config, ConfigError, TrainConfig, load_config, load_yaml, merge_neutral_config,
    parse_config_arg, section, validate,
)


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


def test_neutral_settings_join_the_config_and_nothing_else_may():
    merged = merge_neutral_config({"train": {"epochs": 3}}, {"train": {"num_workers": 7, "log_every": 2},
                                                              "features": {"batch_size": 5}})
    typed = Config.from_dict(merged)
    assert (typed.train.epochs, typed.train.num_workers, typed.train.log_every) == (3, 7, 2)
    assert typed.features.batch_size == 5
    with pytest.raises(ConfigError, match=r"--neutral-config may hold only .* got train: \{'epochs': 4\}"):
        merge_neutral_config({}, {"train": {"epochs": 4}})  # a result-determining key may not come this way
    with pytest.raises(ConfigError, match="got versions"):
        merge_neutral_config({}, {"versions": ["v1.0"]})


def test_neutral_keys_are_keys_of_their_sections():
    defaults = validate({})
    for name, keys in RESULT_NEUTRAL_KEYS.items():
        assert set(keys) <= set(defaults[name]), name


def test_the_cli_reads_the_neutral_settings(tmp_path):
    from visdial_lg.cli import _config, build_parser

    args = build_parser().parse_args(["model-info", "--run", "v1.0-ltmi-disc", "--config", '{"train": {"epochs": 2}}',
                                      "--neutral-config", '{"train": {"num_workers": 9}}'])
    config = _config(args)
    assert (config.train.epochs, config.train.num_workers) == (2, 9)


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


def test_yaml_file_with_lr_1e_3_validates_as_a_float(repo, tmp_path):
    # PyYAML reads YAML 1.1, where `1e-3` (no dot) is a string, not a float.
    configfile = tmp_path / "my.yaml"
    configfile.write_text("train:\n  lr: 1e-3\n  min_lr: 1E-6\n")
    assert load_yaml(configfile)["train"]["lr"] == "1e-3"
    train = load_config(repo / "config.yaml", configfile)["train"]
    assert train["lr"] == 0.001 and type(train["lr"]) is float
    assert train["min_lr"] == 1e-6


def test_command_line_strings_take_the_schema_type(repo):
    # What Snakemake makes of nested --config values: YAML's BaseLoader, every scalar a string.
    override = {
        "train": yaml.load("{epochs: 5, lr: 2.5e-4, betas: [0.8, 0.99], warmup_epochs: 2}", Loader=yaml.BaseLoader),
        "text": yaml.load("{glove: false, min_count: '+3'}", Loader=yaml.BaseLoader),
        "features": yaml.load("{depth: 50, res5_halve: yes, max_boxes: 1e2, weights: '5'}", Loader=yaml.BaseLoader),
        "sources": {"glove": yaml.load("{url: null, size: 12, archive: null}", Loader=yaml.BaseLoader)},
        "local": yaml.load("{glove: 123}", Loader=yaml.BaseLoader),
    }
    config = load_config(repo / "config.yaml", overrides=override)
    train, features = config["train"], config["features"]
    assert train["epochs"] == 5 and type(train["epochs"]) is int
    assert train["lr"] == 2.5e-4 and train["betas"] == [0.8, 0.99] and train["warmup_epochs"] == 2
    assert config["text"]["glove"] is False and config["text"]["min_count"] == 3
    assert features["depth"] == 50 and features["res5_halve"] is True and features["max_boxes"] == 100
    assert config["sources"]["glove"]["size"] == 12 and config["sources"]["glove"]["archive"] is None
    # Where the schema allows a string, the text stays as written.
    assert features["weights"] == "5" and config["local"]["glove"] == "123"
    assert config["sources"]["glove"]["url"] == "null"


def test_coercion_happens_in_place_as_the_snakefile_needs(repo):
    config = load_config(repo / "config.yaml")
    config["train"]["epochs"] = "5"
    assert validate(config) is config and config["train"]["epochs"] == 5
    assert TrainConfig.from_dict({"epochs": "3"}, "train").epochs == 3


@pytest.mark.parametrize(
    "override, message",
    [
        ({"train": {"epochs": "five"}}, "config key 'train.epochs': 'five' is not of type 'integer'"),
        ({"train": {"epochs": "5.5"}}, "config key 'train.epochs': '5.5' is not of type 'integer'"),
        ({"train": {"lr": "nan"}}, "config key 'train.lr': 'nan' is not of type 'number'"),
        ({"train": {"betas": ["0.9", "x"]}}, "config key 'train.betas.1': 'x' is not of type 'number'"),
        ({"text": {"glove": "maybe"}}, "config key 'text.glove': 'maybe' is not of type 'boolean'"),
        ({"features": {"depth": "51"}}, "config key 'features.depth': '51' is not one of [50, 101]"),
        ({"train": {"epochs": "0"}}, "config key 'train.epochs': 0 is less than the minimum of 1"),
    ],
)
def test_strings_that_read_as_no_value_of_the_type_name_the_key(repo, override, message):
    with pytest.raises(ConfigError) as error:
        load_config(repo / "config.yaml", overrides=override)
    assert str(error.value) == message


def test_schema_descriptions_cite_only_published_documents(repo):
    text = (repo / "src/visdial_lg/resources/config.schema.yaml").read_text()
    for internal in ("reference/", "DESIGN", "../shared"):  # doc-references: ignore (the strings checked for)
        assert internal not in text


def test_schema_versions_are_the_packages():
    """The schema is data and cannot import: it must list the versions runs.VERSIONS defines."""
    from visdial_lg.core.schema import SCHEMA_PATH
    from visdial_lg.core.runs import VERSIONS

    versions = yaml.safe_load(SCHEMA_PATH.read_text())["properties"]["versions"]
    assert tuple(versions["items"]["enum"]) == VERSIONS and tuple(versions["default"]) == VERSIONS


def test_typed_config_has_one_field_per_schema_key():
    """Every schema object with `properties` is a dataclass whose fields are its keys, in order
    (`lambda` is the field `lambda_`); a key added to the schema needs its field."""
    import dataclasses
    import typing

    from visdial_lg.core.config import Config
    from visdial_lg.core.schema import SCHEMA_PATH

    def check(cls, schema, where):
        hints = typing.get_type_hints(cls)
        keys = [f.metadata.get("key", f.name) for f in dataclasses.fields(cls)]
        assert keys == list(schema["properties"]), where or "<top level>"
        for f, key in zip(dataclasses.fields(cls), keys):
            sub = schema["properties"][key]
            assert dataclasses.is_dataclass(hints[f.name]) == ("properties" in sub), f"{where}{key}"
            if "properties" in sub:
                check(hints[f.name], sub, f"{where}{key}.")

    check(Config, yaml.safe_load(SCHEMA_PATH.read_text()), "")


@pytest.mark.parametrize("configfile", ["config.yaml", "configs/demo.yaml", "tests/configs/micro.yaml"])
def test_typed_config_gives_back_the_validated_dict(repo, configfile):
    from visdial_lg.core.config import Config, as_dict

    validated = load_config(repo / "config.yaml", repo / configfile)
    config = Config.from_dict(validated)
    assert as_dict(config) == validated
    assert as_dict(config.lg) == {"lambda": validated["lg"]["lambda"]} and config.train.betas == validated["train"]["betas"]
