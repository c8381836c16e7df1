"""Dialogs of the synthetic demo: a caption and 10 grounded question-answer rounds.

Every round records the objects it refers to (its grounding). Questions name an
object by the attributes that *are not* asked ("what color is the big square"),
so the question text never contains its answer; the value to ask about is drawn
uniformly among the values present before an object with it is picked, which
keeps each template's answers balanced. Some rounds refer back with "it" to the
object of an earlier round (or to the one the caption names); only the history
says which object that is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .answers import Meaning
from .scenes import COLOURS, PLURALS, SHAPES, Scene

NUM_ROUNDS = 10
FOLLOW_UP_PROB = 0.4  # chance to ask about "it" when an object is in focus
ATTRIBUTES = ("colour", "shape", "size", "position")
QUESTION = {"colour": "what color is {}", "shape": "what shape is {}", "size": "how big is {}", "position": "where is {}"}
WHERE = {"left": "on the left", "middle": "in the middle", "right": "on the right"}
# Attribute sets that may name an object, shortest first; the asked attribute is left out.
DESCRIPTIONS = (
    ("shape",), ("colour",), ("colour", "shape"), ("size", "shape"), ("shape", "position"), ("size", "colour"),
    ("colour", "position"), ("size", "colour", "shape"), ("colour", "shape", "position"),
)


@dataclass(frozen=True)
class Round:
    question: str
    meaning: Meaning
    referents: tuple[int, ...]  # indices into scene.objects; empty when the round names nothing present
    template: str  # e.g. "colour", "colour_it", "count_shape" (for analysis, not written to JSON)


@dataclass
class Dialog:
    caption: str
    rounds: list[Round] = field(default_factory=list)


def describe(scene: Scene, index: int, attrs: tuple[str, ...]) -> str:
    """'the big red square on the left'; without shape the noun is 'one'."""
    words = [scene.attribute(index, a) for a in ("size", "colour") if a in attrs]
    words.append(scene.attribute(index, "shape") if "shape" in attrs else "one")
    phrase = "the " + " ".join(words)
    if "position" in attrs:
        phrase += " " + WHERE[scene.attribute(index, "position")]
    return phrase


def unique_descriptions(scene: Scene) -> list[list[tuple[str, ...]]]:
    """Per object, every attribute set in DESCRIPTIONS that no other object of the scene matches."""
    n = len(scene.objects)
    unique: list[list[tuple[str, ...]]] = [[] for _ in range(n)]
    for attrs in DESCRIPTIONS:
        keys = [tuple(scene.attribute(i, a) for a in attrs) for i in range(n)]
        for i, key in enumerate(keys):
            if keys.count(key) == 1:
                unique[i].append(attrs)
    return unique


def pick_description(unique: list[tuple[str, ...]], asked: str, rng: random.Random) -> tuple[str, ...] | None:
    """The shortest unique attribute set without `asked` (random among ties), or None."""
    usable = [attrs for attrs in unique if asked not in attrs]
    if not usable:
        return None
    shortest = min(len(a) for a in usable)
    return rng.choice([a for a in usable if len(a) == shortest])


def _choose_balanced(rng: random.Random, groups: dict) -> tuple:
    """A value drawn uniformly among the keys of `groups`, then a member of its group."""
    value = rng.choice(sorted(groups, key=str))
    return value, rng.choice(groups[value])


def ask_attribute(scene: Scene, unique: list, asked: str, rng: random.Random) -> tuple[Round, int, set] | None:
    """A question about attribute `asked` of an object named by its other attributes (`unique`: see
    unique_descriptions)."""
    groups: dict = {}
    for i in range(len(scene.objects)):
        attrs = pick_description(unique[i], asked, rng)
        if attrs is not None:
            groups.setdefault(scene.attribute(i, asked), []).append((i, attrs))
    if not groups:
        return None
    value, (i, attrs) = _choose_balanced(rng, groups)
    question = QUESTION[asked].format(describe(scene, i, attrs))
    return Round(question, (asked, value), (i,), asked), i, set(attrs) | {asked}


def ask_follow_up(scene: Scene, focus: int, known: set, rng: random.Random) -> tuple[Round, int, set] | None:
    """'what color is it' about the object in focus, asking something not yet said."""
    open_attrs = [a for a in ATTRIBUTES if a not in known]
    if not open_attrs:
        return None
    asked = rng.choice(open_attrs)
    value = scene.attribute(focus, asked)
    return Round(QUESTION[asked].format("it"), (asked, value), (focus,), asked + "_it"), focus, known | {asked}


def ask_count(scene: Scene, rng: random.Random) -> Round:
    """'how many squares / red shapes / shapes are there'; the referents are the counted objects."""
    n = len(scene.objects)
    by = rng.choice(("shape", "colour", "total"))
    if by == "total":
        return Round("how many shapes are there", ("count", n), tuple(range(n)), "count_total")
    values = SHAPES if by == "shape" else tuple(COLOURS)
    groups: dict = {}
    for v in values:
        members = tuple(i for i in range(n) if scene.attribute(i, by) == v)
        groups.setdefault(len(members), []).append((v, members))
    count, (value, members) = _choose_balanced(rng, groups)
    question = f"how many {PLURALS[value]} are there" if by == "shape" else f"how many {value} shapes are there"
    return Round(question, ("count", count), members, "count_" + by)


def ask_existence(scene: Scene, rng: random.Random) -> tuple[Round, int | None, set]:
    """'is there a red square', yes or no with equal chance; a unique yes puts that object in focus."""
    present: dict = {}
    for i, obj in enumerate(scene.objects):
        present.setdefault((obj.colour, obj.shape), []).append(i)
    if rng.random() < 0.5:
        colour, shape = rng.choice(sorted(present))
    else:
        absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
        colour, shape = rng.choice(absent)
    members = tuple(present.get((colour, shape), ()))
    round_ = Round(f"is there a {colour} {shape}", ("yesno", bool(members)), members, "exist")
    if len(members) == 1:
        return round_, members[0], {"colour", "shape"}
    return round_, None, set()


def make_caption(scene: Scene, rng: random.Random) -> tuple[str, int | None]:
    """The caption, and the object it names (a shape that occurs once), if any."""
    shapes = [o.shape for o in scene.objects]
    unique = [i for i, s in enumerate(shapes) if shapes.count(s) == 1]
    if not unique:
        return f"some shapes on a {scene.tone} background", None
    i = rng.choice(unique)
    return f"a {shapes[i]} and some other shapes on a {scene.tone} background", i


def make_dialog(scene: Scene, rng: random.Random) -> Dialog:
    """Caption and NUM_ROUNDS rounds: "it" follow-ups while an object is in focus, else a fresh question."""
    caption, focus = make_caption(scene, rng)
    known: set = {"shape"} if focus is not None else set()
    dialog = Dialog(caption)
    asked_before: set = set()
    unique = unique_descriptions(scene)
    while len(dialog.rounds) < NUM_ROUNDS:
        step = None
        if focus is not None and rng.random() < FOLLOW_UP_PROB:
            step = ask_follow_up(scene, focus, known, rng)
        for _ in range(10):  # a fresh question; retry if this dialog already asked it
            if step is not None and (step[0].template.endswith("_it") or step[0].question not in asked_before):
                break
            kind = rng.choice(("attribute", "attribute", "count", "exist"))
            if kind == "attribute":
                step = ask_attribute(scene, unique, rng.choice(ATTRIBUTES), rng)
            elif kind == "count":
                step = (ask_count(scene, rng), None, set())
            else:
                step = ask_existence(scene, rng)
        if step is None:  # no object can be named uniquely: counting always works
            step = (ask_count(scene, rng), None, set())
        round_, focus, known = step
        asked_before.add(round_.question)
        dialog.rounds.append(round_)
    return dialog
