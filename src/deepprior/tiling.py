"""Restore an image too large for memory as overlapping tiles, blended smoothly.

Each tile is fitted on its own (its own network, the same recipe and seed)
through the task's operator restricted to the tile
(:meth:`deepprior.operators.Operator.restrict`); neighbouring tiles overlap,
and their results are blended with raised-cosine weights across the overlap
so no seam shows. Identity (denoising, JPEG), masks (inpainting), blurs and
downsamplers (super-resolution, on tiles aligned to the scale) can be tiled.
"""
from __future__ import annotations

import math

import numpy as np

from deepprior.operators import Box

__all__ = ["Tile", "assemble", "blend_weights", "tile_boxes"]


Tile = Box  # a box of the output image


def _starts(length: int, tile: int, overlap: int, multiple: int) -> list[int]:
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    step = (length - tile) / (count - 1)
    starts = sorted({min(int(round(i * step)) // multiple * multiple, length - tile) for i in range(count)})
    return starts


def tile_boxes(height: int, width: int, tile: int, overlap: int, multiple: int = 1) -> list[Tile]:
    """Tiles of at most ``tile`` x ``tile`` covering the image, neighbours
    sharing at least ``overlap`` pixels, corners on multiples of ``multiple``.

    >>> [(t.top, t.left, t.height, t.width) for t in tile_boxes(100, 60, 64, 16)]
    [(0, 0, 64, 60), (36, 0, 64, 60)]
    """
    if tile <= overlap:
        raise ValueError(f"the tile ({tile}) must be larger than the overlap ({overlap})")
    th, tw = min(tile, height), min(tile, width)
    return [Tile(top, left, th, tw) for top in _starts(height, tile, overlap, multiple)
            for left in _starts(width, tile, overlap, multiple)]


def blend_weights(box: Tile, height: int, width: int, overlap: int) -> np.ndarray:
    """``(h, w)`` weights of a tile: 1 inside, falling smoothly (raised cosine)
    to near 0 across ``overlap`` pixels on the sides that have a neighbour."""

    def ramp(n: int, at_start: bool, at_end: bool) -> np.ndarray:
        w = np.ones(n)
        k = min(overlap, n // 2)
        if k > 0:
            rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)
            if not at_start:
                w[:k] = rise
            if not at_end:
                w[n - k :] = rise[::-1]
        return w

    rows = ramp(box.height, box.top == 0, box.top + box.height >= height)
    cols = ramp(box.width, box.left == 0, box.left + box.width >= width)
    return np.outer(rows, cols)


def assemble(height: int, width: int, channels: int, overlap: int,
             pieces: list[tuple[Tile, np.ndarray]]) -> np.ndarray:
    """Blend restored tiles into one ``(height, width, channels)`` image."""
    total = np.zeros((height, width, channels))
    weight = np.zeros((height, width, 1))
    for box, piece in pieces:
        w = blend_weights(box, height, width, overlap)[..., None]
        total[box.top : box.top + box.height, box.left : box.left + box.width] += w * piece
        weight[box.top : box.top + box.height, box.left : box.left + box.width] += w
    return (total / np.maximum(weight, 1e-12)).astype(np.float32)
