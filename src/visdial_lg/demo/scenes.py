"""Scenes of the synthetic demo: 3-8 coloured shapes placed on a canvas.

A scene is pure geometry and attributes; `render` turns it into pixels and
`dialogs` asks questions about it. Every attribute a question can ask
(shape, colour, size, horizontal position) is sampled independently and
uniformly, so that no attribute predicts another and the answers have to be read
off the image.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ..core.errors import VisdialLGError

# Category names double as the words used in questions and answers, so that a
# detector's class names can be matched against the dialog text as on COCO.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star")
PLURALS: dict[str, str] = {s: s + "s" for s in SHAPES}
COLOURS: dict[str, tuple[int, int, int]] = {  # name -> RGB; names are the answer words
    "red": (214, 38, 38),
    "orange": (245, 140, 20),
    "yellow": (238, 218, 40),
    "green": (44, 166, 64),
    "blue": (40, 84, 222),
    "purple": (140, 52, 182),
}
SIZES: tuple[str, ...] = ("small", "big")
POSITIONS: tuple[str, ...] = ("left", "middle", "right")  # horizontal thirds of the image
TONES: tuple[str, ...] = ("light", "dark")  # background tone, named in the caption

MIN_OBJECTS, MAX_OBJECTS = 3, 8
# Object extent as a fraction of min(width, height): the two size classes stay
# well apart so that "big" / "small" is unambiguous after JPEG and noise.
SIZE_RANGE = {"small": (0.15, 0.19), "big": (0.26, 0.31)}
GAP = 2.0  # px between boxes: objects never overlap, so every box sees its whole shape
THIRDS_MARGIN = 0.04  # centres keep this fraction of the width away from the thirds' borders
CIRCLE_POINTS = 32


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    polygon: tuple[tuple[float, float], ...]  # outline in pixels, also the COCO segmentation

    @property
    def box(self) -> tuple[float, float, float, float]:
        """x1, y1, x2, y2 of the polygon, in pixels."""
        xs = [p[0] for p in self.polygon]
        ys = [p[1] for p in self.polygon]
        return (min(xs), min(ys), max(xs), max(ys))

    def position(self, width: int) -> str:
        x1, _, x2, _ = self.box
        third = min(int(3 * (x1 + x2) / 2 / width), 2)
        return POSITIONS[third]

    def area(self) -> float:
        """Shoelace area of the polygon."""
        pts = self.polygon
        twice = sum(pts[i][0] * pts[i - 1][1] - pts[i - 1][0] * pts[i][1] for i in range(len(pts)))
        return abs(twice) / 2.0


@dataclass(frozen=True)
class Scene:
    width: int
    height: int
    tone: str
    objects: tuple[SceneObject, ...]

    def __post_init__(self):
        # Dialog generation compares attributes many times; look them up in a table built once.
        table = tuple({"shape": o.shape, "colour": o.colour, "size": o.size, "position": o.position(self.width)}
                      for o in self.objects)
        object.__setattr__(self, "_attributes", table)

    def attribute(self, index: int, name: str) -> str:
        """One of shape / colour / size / position of object `index`."""
        return self._attributes[index][name]


def shape_polygon(shape: str, cx: float, cy: float, extent: float) -> tuple[tuple[float, float], ...]:
    """Outline of `shape` centred on (cx, cy), `extent` pixels wide, rounded to 0.01 px."""
    r = extent / 2.0
    if shape == "circle":
        pts = [(cx + r * math.cos(2 * math.pi * k / CIRCLE_POINTS), cy + r * math.sin(2 * math.pi * k / CIRCLE_POINTS))
               for k in range(CIRCLE_POINTS)]
    elif shape == "square":
        pts = [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    elif shape == "triangle":  # equilateral, pointing up, box-centred
        h = extent * math.sqrt(3) / 2
        pts = [(cx, cy - h / 2), (cx + r, cy + h / 2), (cx - r, cy + h / 2)]
    elif shape == "diamond":
        pts = [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    elif shape == "star":  # 5 points, inner radius 0.45 of the outer, one point up
        pts = []
        for k in range(10):
            radius = r if k % 2 == 0 else 0.45 * r
            angle = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return tuple((round(x, 2), round(y, 2)) for x, y in pts)


def _overlaps(a, b, gap: float) -> bool:
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def _near_thirds_border(cx: float, width: int) -> bool:
    return any(abs(cx - width * k / 3) < THIRDS_MARGIN * width for k in (1, 2))


def _place(rng: random.Random, shape: str, size: str, width: int, height: int, taken: list) -> tuple | None:
    """A polygon of `shape` in `size` that touches no box in `taken`, or None after 100 tries."""
    lo, hi = SIZE_RANGE[size]
    for _ in range(100):
        extent = rng.uniform(lo, hi) * min(width, height)
        cx = rng.uniform(extent / 2 + 1, width - extent / 2 - 1)
        cy = rng.uniform(extent / 2 + 1, height - extent / 2 - 1)
        if _near_thirds_border(cx, width):
            continue
        r = extent / 2  # every shape lies inside the square of side `extent` around its centre
        if not any(_overlaps((cx - r, cy - r, cx + r, cy + r), t, GAP) for t in taken):
            return shape_polygon(shape, cx, cy, extent)
    return None


def sample_scene(rng: random.Random, width: int, height: int) -> Scene:
    """3-8 non-overlapping objects with independent uniform shape, colour and size.

    When the canvas is too crowded for the next object it is tried small, and
    otherwise left out, so a small canvas can hold fewer objects than drawn.
    """
    target = rng.randint(MIN_OBJECTS, MAX_OBJECTS)
    objects: list[SceneObject] = []
    taken: list = []
    for _ in range(target):
        shape, colour, size = rng.choice(SHAPES), rng.choice(list(COLOURS)), rng.choice(SIZES)
        polygon = _place(rng, shape, size, width, height, taken)
        if polygon is None and size == "big":
            size = "small"
            polygon = _place(rng, shape, size, width, height, taken)
        if polygon is None:
            continue
        obj = SceneObject(shape, colour, size, polygon)
        objects.append(obj)
        taken.append(obj.box)
    if len(objects) < MIN_OBJECTS:  # only on canvases far below the schema's 32x32 minimum
        raise VisdialLGError(f"demo.image_width x demo.image_height = {width}x{height} is too small for {MIN_OBJECTS} objects")
    return Scene(width, height, rng.choice(TONES), tuple(objects))
