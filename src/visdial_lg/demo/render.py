"""Rendering a demo scene to a JPEG: textured background, anti-aliased shapes, noise.

The texture (gradient, faint strokes, pixel noise, per-object colour jitter)
keeps the image from being trivially separable while leaving every attribute a
question asks about clearly visible.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageDraw

from .scenes import COLOURS, Scene

SUPERSAMPLE = 2  # draw at 2x and box-average down: smooth edges on small canvases
JPEG_QUALITY = 90
NOISE_STD = 7.0  # grey levels of per-pixel Gaussian noise
COLOUR_JITTER = 14  # max per-channel shift of an object's fill from its palette colour
TONE_LEVEL = {"light": (196, 226), "dark": (38, 70)}  # background grey range per tone


def _background(scene: Scene, rng: random.Random) -> Image.Image:
    lo, hi = TONE_LEVEL[scene.tone]
    top, bottom = rng.uniform(lo, hi), rng.uniform(lo, hi)
    tint = np.array([rng.uniform(-6, 6) for _ in range(3)])
    w, h = scene.width * SUPERSAMPLE, scene.height * SUPERSAMPLE
    ramp = np.linspace(top, bottom, h)[:, None, None] + tint  # [H, 1, 3] vertical gradient
    column = Image.fromarray(np.clip(ramp, 0, 255).astype(np.uint8))
    image = column.resize((w, h), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(3, 7)):  # faint strokes, a little lighter or darker than the ground
        shade = int((top + bottom) / 2 + rng.choice((-1, 1)) * rng.uniform(10, 22))
        xy = [(rng.uniform(0, w), rng.uniform(0, h)) for _ in range(2)]
        draw.line(xy, fill=(shade, shade, shade), width=rng.randint(1, 2) * SUPERSAMPLE)
    return image


def render(scene: Scene, rng: random.Random, noise_seed: int) -> Image.Image:
    """The scene as an RGB image of scene.width x scene.height."""
    image = _background(scene, rng)
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        fill = tuple(max(0, min(255, c + rng.randint(-COLOUR_JITTER, COLOUR_JITTER))) for c in COLOURS[obj.colour])
        outline = tuple(int(c * 0.6) for c in fill)
        polygon = [(x * SUPERSAMPLE, y * SUPERSAMPLE) for x, y in obj.polygon]
        draw.polygon(polygon, fill=fill, outline=outline, width=SUPERSAMPLE)
    image = image.reduce(SUPERSAMPLE)
    noise = np.random.default_rng(noise_seed).normal(0.0, NOISE_STD, (scene.height, scene.width, 1))  # [H, W, 1]
    pixels = np.asarray(image, dtype=np.float32) + noise.astype(np.float32)  # [H, W, 3]
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def save_jpeg(image: Image.Image, target: Path | BinaryIO) -> None:
    """Fixed encoder settings so that the same scene always gives the same bytes."""
    image.save(target, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False)
