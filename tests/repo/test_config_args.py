"""Each rule passes its command the config it reads, and no more (workflow/rules/common.smk:
`config_arg`). A job reruns when what it is passed changes, so passing less than it reads would
hide a user's setting behind the schema's default, and passing more reruns it for nothing (setting
`evaluate.human_judgments` once the sheet is filled in must rerun Table 7, not every evaluation)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
import typing

import pytest

from visdial_lg.cli import COMMANDS
from visdial_lg.core.config import Config
from visdial_lg.cli.report import FIGURES

RULE = re.compile(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", re.S | re.M)
SELECTION = re.compile(r"cfg=config_arg\(([^)]*)\)")
COMMAND = re.compile(r"(?:python -m visdial_lg|\{params\.launcher\}) ([\w-]+)(?: (\w+))?")  # train: a launcher


def _rules(repo) -> dict[str, tuple[tuple[str, ...], str, str | None]]:
    """rule -> (its config_arg selection, its command, the command's first word after it)."""
    rules = {}
    for path in sorted((repo / "workflow/rules").glob("*.smk")):
        for name, body in RULE.findall(path.read_text()):
            selection, command = SELECTION.search(body), COMMAND.search(body)
            if selection and command:
                rules[name] = (ast.literal_eval(f"({selection.group(1)},)"), command.group(1), command.group(2))
    return rules


def _keys(section: str) -> list[str]:
    """The attribute names of a config section's typed dataclass."""
    return [f.name for f in dataclasses.fields(typing.get_type_hints(Config)[section])]


def _handler(command: str, word: str | None):
    return FIGURES[word] if command == "figure" else COMMANDS[command].handler


def config_reads(function) -> tuple[set[str], bool]:
    """What a handler reads of its `config` argument: "section.key" or "section" (the whole
    of it), and whether it hands `config` itself on (then only whole sections may be chosen)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    reads, parents, bare = set(), {}, False
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "config":
            outer = parents.get(node)
            if not isinstance(outer, ast.Attribute):
                bare = bare or not isinstance(outer, ast.arguments)
                continue
            inner = parents.get(outer)
            if isinstance(inner, ast.Attribute):
                reads.add(f"{outer.attr}.{inner.attr}")
            else:
                reads.add(outer.attr)
    return reads, bare


def test_the_rules_are_found(repo):
    rules = _rules(repo)
    assert {"evaluate", "grounding_accuracy", "table", "attention_figures", "dialog_figure", "train"} <= set(rules)


@pytest.mark.parametrize("rule", ["evaluate", "evaluate_test", "grounding_accuracy", "human_eval_sheet", "table",
                                  "significance", "attention_figures", "dialog_figure", "explorer", "train",
                                  "extract_features", "vocab", "tokenize", "make_demo"])
def test_a_rule_passes_what_its_command_reads(repo, rule):
    rules = _rules(repo)
    if rule not in rules:
        pytest.skip(f"no rule {rule} with a --config")  # named in the list so that a rename is seen below
    selection, command, word = rules[rule]
    reads, bare = config_reads(_handler(command, word))
    whole = {name for name in selection if "." not in name}
    missing = {read for read in reads if read not in selection and read.split(".")[0] not in whole}
    assert not missing, f"rule {rule}: `{command}` reads {sorted(missing)} but is not passed them"
    if bare:
        assert whole == set(selection), f"rule {rule}: `{command}` hands its whole config on: pass whole sections"
    unread = {name for name in selection if "." in name and name not in reads}
    assert not unread, f"rule {rule}: passed {sorted(unread)}, which `{command}` never reads (reruns for nothing)"
    if not bare:  # a whole section passed where the command reads only some of its keys
        partly = {s for s in whole if s not in reads and {r for r in reads if r.startswith(f"{s}.")}
                  and {r for r in reads if r.startswith(f"{s}.")} != {f"{s}.{k}" for k in _keys(s)}}
        assert not partly, f"rule {rule}: passes all of {sorted(partly)}; `{command}` reads only " \
                           f"{sorted(r for r in reads if r.split('.')[0] in partly)}"


def test_the_parametrised_rules_are_every_rule_with_a_config(repo):
    listed = {"evaluate", "evaluate_test", "grounding_accuracy", "human_eval_sheet", "table", "significance",
              "attention_figures", "dialog_figure", "explorer", "train", "extract_features", "vocab", "tokenize",
              "make_demo"}
    assert set(_rules(repo)) == listed


def test_config_reads_sees_keys_sections_and_a_config_handed_on():
    def handler(args, config):  # never called: only read
        print(config.evaluate.batch_size, config.statistics, tuple(config.versions))
        print(config)

    assert config_reads(handler) == ({"evaluate.batch_size", "statistics", "versions"}, True)
