"""A seeded synthetic street-scene data set written in the *official* Cityscapes on-disk format.

For ``make demo`` and tests on machines without the (gated) real data set. Every scene is first described
as Cityscapes polygons -- the ``_gtFine_polygons.json`` of the image -- and the label maps are rasterised
from that file by cityscapesscripts' own tools (``json2labelImg.createLabelImage``,
``json2instanceImg.createInstanceImage``), so they are what the official scripts make of the polygons::

    ROOT/leftImg8bit/{train,val,test}/<city>/<city>_<seq:06d>_000019_leftImg8bit.png   RGB image
    ROOT/gtFine/{train,val,test}/<city>/<stem>_gtFine_polygons.json                  imgHeight, imgWidth, objects
                                                                                [{label, polygon}], drawn
                                                                                in order (later covers earlier)
    ROOT/gtFine/{train,val,test}/<city>/<stem>_gtFine_labelIds.png                   uint8 label ids
    ROOT/gtFine/{train,val,test}/<city>/<stem>_gtFine_instanceIds.png                uint16: id * 1000 + k for
                                                                                instance k of a class with
                                                                                instances, the bare id for
                                                                                stuff and crowd groups
    ROOT/gtFine/{train,val,test}/<city>/<stem>_gtFine_color.png                      RGBA colours of the table

Scenes: sky (gradients, clouds), facades and far buildings (window grids), a road in perspective (asphalt
noise, lane markings), sidewalks (paving), trees (vegetation) and poles; then, from far to near (so nearer
objects occlude farther ones and may split them into pieces), cars (rear and side views), trucks, buses,
persons, riders on bicycles or motorcycles, parked bicycles and motorcycles, and sometimes a crowd group
(``persongroup``, ``cargroup``, ``bicyclegroup``: the bare class id in ``_instanceIds``). Lighting varies per
image (exposure, white balance, gamma, cast shadows, haze, sensor noise, blur). Label ids come from
``cityscapesscripts.helpers.labels`` by name.

Each image has its own random stream ``default_rng([seed, split, index])``: a seed gives byte-identical
files, whatever the number of worker processes.

Usage::

    python tools/synthetic_cityscapes.py data/synthetic_cityscapes --num-train 240 --num-val 40
"""
import argparse
import json
import os
import os.path as osp
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.helpers.labels import name2label
from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from PIL import Image, ImageDraw

TRAIN_CITIES = ('artesia', 'brickton', 'calloway')
VAL_CITIES = ('dunmore', )
TEST_CITIES = ('eastfield', )
CITIES = dict(train=TRAIN_CITIES, val=VAL_CITIES, test=TEST_CITIES)
FRAME = 19  # Cityscapes' annotated frame is the 20th of each 30-frame snippet
SPLIT_CODES = {'train': 0, 'val': 1, 'test': 2}
# the labels a scene uses, checked against cityscapesscripts' table at import (a group label is its class
# name + 'group', as in the official polygon files)
SCENE_LABELS = ('sky', 'building', 'vegetation', 'sidewalk', 'road', 'pole', 'traffic sign', 'person', 'rider', 'car',
                'truck', 'bus', 'motorcycle', 'bicycle')
for _name in SCENE_LABELS:
    assert _name in name2label, f'cityscapesscripts has no label {_name!r}'
GROUP_LABELS = ('persongroup', 'cargroup', 'bicyclegroup')
INSTANCE_CLASS_IDS = [lb.id for lb in name2label.values() if lb.hasInstances]

Polygon = List[List[int]]
Texture = np.ndarray  # (H, W, 3) float32 RGB in [0, 1]


# ------------------------------------------------------------------------------------------- helpers
class Canvas:
    """Pixel grids of one image and the random stream its painters draw from."""

    def __init__(self, rng: np.random.Generator, height: int, width: int) -> None:
        self.rng = rng
        self.h, self.w = height, width
        self.yy, self.xx = np.mgrid[0:height, 0:width].astype(np.float32)

    def smooth(self, cell: float) -> np.ndarray:
        """A smooth random field (H, W), roughly N(0, 1), with features of about ``cell`` pixels."""
        gh, gw = int(self.h / cell) + 3, int(self.w / cell) + 3
        small = self.rng.standard_normal((gh, gw)).astype(np.float32)
        big = cv2.resize(small, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
        return big[:self.h, :self.w]

    def fine(self, amp: float) -> np.ndarray:
        """Pixel noise (H, W, 1) of standard deviation ``amp``."""
        return (self.rng.standard_normal((self.h, self.w, 1)) * amp).astype(np.float32)

    def color(self, base: Sequence[float], jitter: float = 0.06) -> np.ndarray:
        return np.clip(np.asarray(base, np.float32) + self.rng.uniform(-jitter, jitter, 3), 0, 1).astype(np.float32)

    def fill(self, rgb: Sequence[float]) -> np.ndarray:
        return np.broadcast_to(np.asarray(rgb, np.float32), (self.h, self.w, 3)).copy()

    def local(self, box: Tuple[float, float, float, float]) -> Tuple[np.ndarray, np.ndarray]:
        """Object coordinates (u, v) in [0, 1] over ``box = (x0, y0, w, h)``."""
        x0, y0, bw, bh = box
        return (self.xx - x0) / max(bw, 1e-3), (self.yy - y0) / max(bh, 1e-3)


def put(tex: np.ndarray, mask: np.ndarray, rgb) -> None:
    """Paint ``rgb`` (a colour or a (H, W, 3) texture) into ``tex`` where ``mask``."""
    tex[mask] = rgb[mask] if isinstance(rgb, np.ndarray) and rgb.ndim == 3 else rgb


def clip_polygon(points: Sequence[Sequence[float]], width: int, height: int) -> Polygon:
    """Clip a polygon to the image (Sutherland-Hodgman) and round it to integer pixels."""
    pts = [tuple(map(float, p)) for p in points]
    for axis, limit, keep_below in ((0, 0.0, False), (0, width - 1.0, True), (1, 0.0, False), (1, height - 1.0, True)):
        if not pts:
            break
        inside = (lambda p: p[axis] <= limit) if keep_below else (lambda p: p[axis] >= limit)
        out = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(_cross(prev, cur, axis, limit))
                out.append(cur)
            elif inside(prev):
                out.append(_cross(prev, cur, axis, limit))
        pts = out
    poly = []
    for x, y in pts:
        p = [int(round(x)), int(round(y))]
        if not poly or poly[-1] != p:
            poly.append(p)
    if len(poly) > 1 and poly[0] == poly[-1]:
        poly.pop()
    return poly


def _cross(a, b, axis, limit):
    t = (limit - a[axis]) / (b[axis] - a[axis])
    return tuple(a[k] + t * (b[k] - a[k]) for k in range(2))


def ellipse(cx: float,
            cy: float,
            rx: float,
            ry: float,
            n: int = 14,
            a0: float = 0.0,
            a1: float = 2 * np.pi,
            rng: Optional[np.random.Generator] = None,
            wobble: float = 0.0) -> List[Tuple[float, float]]:
    """Points on an ellipse arc from angle ``a0`` to ``a1`` (image coordinates: y down), radius jittered."""
    angles = np.linspace(a0, a1, n, endpoint=(a1 - a0) < 2 * np.pi - 1e-6)
    r = 1.0 + (rng.uniform(-wobble, wobble, n) if rng is not None and wobble else 0.0)
    return [(cx + rx * ri * np.cos(a), cy + ry * ri * np.sin(a)) for a, ri in zip(angles, np.broadcast_to(r, n))]


def in_ellipse(xx, yy, cx, cy, rx, ry):
    return ((xx - cx) / max(rx, 1e-3))**2 + ((yy - cy) / max(ry, 1e-3))**2


# --------------------------------------------------------------------------------- the scene layout
class Street:
    """Geometry of one street: horizon, vanishing point, road edges and facades in perspective."""

    def __init__(self, c: Canvas) -> None:
        rng, h, w = c.rng, c.h, c.w
        self.yh = h * rng.uniform(0.36, 0.5)  # horizon
        self.vx = w * rng.uniform(0.32, 0.68)  # vanishing point
        self.half_far = rng.uniform(1.0, 4.0)  # road half-width at the horizon
        center_bottom = self.vx + w * rng.uniform(-0.2, 0.2)
        half_bottom = w * rng.uniform(0.35, 0.7)
        self.left_bottom, self.right_bottom = center_bottom - half_bottom, center_bottom + half_bottom
        # how far below the horizon the facades meet the sidewalk at the left / right image border
        self.drop = {-1: h * rng.uniform(0.08, 0.3), 1: h * rng.uniform(0.08, 0.3)}
        self.h, self.w = h, w

    def depth(self, y: float) -> float:
        """Scale factor of an object standing at row ``y``: 0 at the horizon, 1 at the bottom row."""
        return max(y - self.yh, 0.0) / (self.h - self.yh)

    def road_x(self, y: float, side: int) -> float:
        """x of the left (side=-1) or right (side=1) road edge at row ``y``."""
        s = self.depth(y)
        far = self.vx + side * self.half_far
        near = self.left_bottom if side < 0 else self.right_bottom
        return far + s * (near - far)

    def base_y(self, x: float) -> float:
        """Row where a facade meets the sidewalk at column ``x`` (lower towards the image sides)."""
        side = -1 if x < self.vx else 1
        edge = 0.0 if side < 0 else self.w - 1.0
        t = abs(x - self.vx) / max(abs(edge - self.vx), 1.0)
        return self.yh + t * self.drop[side]


# ------------------------------------------------------------------------------------- stuff painters
def paint_sky(c: Canvas, st: Street):
    rng = c.rng
    overcast = rng.random() < 0.3
    top = c.color((0.62, 0.64, 0.68) if overcast else (0.22, 0.42, 0.78), 0.08)
    low = c.color((0.82, 0.83, 0.85) if overcast else (0.72, 0.82, 0.92), 0.06)
    t = np.clip(c.yy / max(st.yh, 1.0), 0, 1)[..., None]
    tex = top * (1 - t) + low * t
    clouds = np.clip(c.smooth(rng.uniform(10, 30)) - rng.uniform(0.2, 1.0), 0, 1)[..., None]
    tex = tex * (1 - 0.7 * clouds) + 0.95 * 0.7 * clouds
    poly = [[0, 0], [c.w - 1, 0], [c.w - 1, st.yh + 2], [0, st.yh + 2]]
    return 'sky', poly, tex + c.fine(0.01)


FACADE_COLORS = [(0.55, 0.55, 0.55), (0.72, 0.64, 0.52), (0.62, 0.36, 0.3), (0.82, 0.8, 0.74), (0.42, 0.44, 0.5),
                 (0.75, 0.7, 0.45)]


def building_texture(c: Canvas, u: np.ndarray, v: np.ndarray, floors: float, cols: float) -> np.ndarray:
    """Facade colour with a grid of windows at (u, v) in [0, 1] (``floors`` x ``cols`` windows)."""
    rng = c.rng
    base = c.color(FACADE_COLORS[rng.integers(len(FACADE_COLORS))], 0.07)
    tex = c.fill(base) * (1 + 0.08 * c.smooth(8)[..., None])
    fu, fv = (u * cols) % 1.0, (v * floors) % 1.0
    ww, wh = rng.uniform(0.35, 0.7), rng.uniform(0.35, 0.65)
    win = (np.abs(fu - 0.5) < ww / 2) & (np.abs(fv - 0.55) < wh / 2) & (v > 0.04) & (v < 0.9)
    glass = c.color((0.2, 0.24, 0.3) if rng.random() < 0.7 else (0.85, 0.78, 0.5), 0.05)
    lit = (c.smooth(3) > 1.0)[..., None] * 0.25
    put(tex, win, glass + lit)
    return tex + c.fine(0.015)


def paint_facades(c: Canvas, st: Street) -> List[Tuple[str, Polygon, Texture]]:
    """Facades on both sides in perspective, far buildings between them (all 'building')."""
    rng, h, w = c.rng, c.h, c.w
    out = []
    bottom = np.array([st.base_y(float(x)) for x in range(w)], np.float32)[None, :]  # facade base per column
    # far blocks near the vanishing point
    x = st.vx - w * rng.uniform(0.15, 0.35)
    end = st.vx + w * rng.uniform(0.15, 0.35)
    while x < end:
        bw = w * rng.uniform(0.05, 0.14)
        if rng.random() < 0.8:
            top = st.yh - h * rng.uniform(0.04, 0.2)
            poly = [[x, top], [x + bw, top], [x + bw, st.yh + 1], [x, st.yh + 1]]
            u, v = c.local((x, top, bw, st.yh + 1 - top))
            out.append(('building', poly, building_texture(c, u, v, rng.uniform(3, 6), rng.uniform(2, 5))))
        x += bw * rng.uniform(0.7, 1.1)
    # side facades: a few buildings of different heights, receding to the vanishing point
    for side in (-1, 1):
        if rng.random() < 0.12:  # an open side (park, square): sky and trees there
            continue
        edge = 0.0 if side < 0 else w - 1.0
        span = abs(edge - st.vx) * rng.uniform(0.55, 0.9)
        cuts = np.sort(rng.uniform(0, 1, rng.integers(1, 4)))
        bounds = [0.0] + cuts.tolist() + [1.0]
        for a, b in zip(bounds[:-1], bounds[1:]):
            xa, xb = edge - side * span * a, edge - side * span * b  # xa nearer the image side
            top_a = st.yh - h * rng.uniform(0.3, 0.9) * (1 - 0.6 * a)
            top_b = st.yh - (st.yh - top_a) * (1 - (b - a) * 0.7)
            poly = [[xa, top_a], [xb, top_b], [xb, st.base_y(xb) + 1], [xa, st.base_y(xa) + 1]]
            # facade coordinates: u along the street (compressed towards the vanishing point), v up the wall
            u = np.clip(np.abs(c.xx - xa) / max(abs(xb - xa), 1.0), 0, 1)**0.7
            top = top_a + (top_b - top_a) * np.clip((c.xx - xa) / (xb - xa), 0, 1)
            v = (c.yy - top) / np.maximum(bottom - top, 1.0)
            out.append(('building', poly, building_texture(c, u, v, rng.uniform(3, 8), rng.uniform(3, 9))))
    return out


def paint_sidewalks(c: Canvas, st: Street) -> List[Tuple[str, Polygon, Texture]]:
    """Sidewalks (or squares, where no facade stands) on both sides of the road, up to the horizon."""
    rng, h, w = c.rng, c.h, c.w
    out = []
    for side in (-1, 1):
        edge = 0.0 if side < 0 else w - 1.0
        poly = [[edge, st.yh], [st.vx + side * st.half_far, st.yh], [st.road_x(h - 1, side), h - 1], [edge, h - 1]]
        base = c.color(((0.62, 0.6, 0.58), (0.66, 0.55, 0.52), (0.55, 0.56, 0.6))[rng.integers(3)], 0.06)
        tex = c.fill(base) * (1 + 0.06 * c.smooth(6)[..., None])
        s = np.maximum((c.yy - st.yh) / (h - st.yh), 0.02)  # paving slabs shrink with distance
        rows = (np.log(s) * rng.uniform(4, 7)) % 1.0 < 0.12
        cols = ((c.xx - st.vx) / (s * rng.uniform(8, 14) * w / 256)) % 1.0 < 0.1
        put(tex, rows | cols, base * 0.8)
        out.append(('sidewalk', poly, tex + c.fine(0.02)))
    return out


def paint_road(c: Canvas, st: Street) -> Tuple[str, Polygon, Texture]:
    """The road in perspective: asphalt, patches, lane markings converging to the vanishing point."""
    rng, h, w = c.rng, c.h, c.w
    poly = [[st.vx - st.half_far, st.yh], [st.vx + st.half_far, st.yh], [st.road_x(h - 1, 1), h - 1],
            [st.road_x(h - 1, -1), h - 1]]
    base = c.color((0.33, 0.33, 0.35), 0.07)
    tex = c.fill(base) * (1 + 0.1 * c.smooth(rng.uniform(4, 16))[..., None])
    patch = c.smooth(20) > 1.2
    put(tex, patch, base * 0.8)
    # lane markings: a dashed centre line (and sometimes edge lines) converging to the vanishing point
    s = np.clip((c.yy - st.yh) / (h - st.yh), 0, None)
    for frac, dashed in ((0.5, True), (0.12, False), (0.88, False)):
        if not dashed and rng.random() < 0.5:
            continue
        xl, xr = st.road_x(h - 1, -1), st.road_x(h - 1, 1)
        x_bottom = xl + frac * (xr - xl)
        x_line = (st.vx + (x_bottom - st.vx) * s)
        half = np.maximum(s * w * 0.008, 0.3)
        line = (np.abs(c.xx - x_line) < half) & (c.yy > st.yh + 2)
        if dashed:
            line &= (np.log(np.maximum(s, 1e-3)) * 5.0 + rng.uniform(0, 1)) % 1.0 < 0.5
        put(tex, line, c.color((0.9, 0.9, 0.88), 0.05))
    return 'road', poly, tex + c.fine(0.02)


# ------------------------------------------------------------------------------------ thing painters
# Each returns a list of (label, polygon, texture) for an object standing at (x, y_foot) with pixel height h.
CAR_COLORS = [(0.75, 0.1, 0.1), (0.1, 0.2, 0.6), (0.8, 0.8, 0.82), (0.08, 0.08, 0.1), (0.95, 0.95, 0.95),
              (0.5, 0.52, 0.55), (0.2, 0.45, 0.25), (0.85, 0.6, 0.1)]
CLOTHES = [(0.1, 0.1, 0.12), (0.2, 0.25, 0.5), (0.6, 0.1, 0.12), (0.85, 0.85, 0.8), (0.45, 0.4, 0.3), (0.2, 0.45, 0.3),
           (0.9, 0.6, 0.1), (0.5, 0.5, 0.55)]
SKIN = [(0.92, 0.75, 0.6), (0.75, 0.55, 0.4), (0.45, 0.3, 0.2), (0.25, 0.18, 0.12)]


def wheels(c: Canvas, tex, centers, r):
    for cx, cy in centers:
        d = in_ellipse(c.xx, c.yy, cx, cy, r, r)
        put(tex, d < 1, c.color((0.06, 0.06, 0.07), 0.02))
        put(tex, d < 0.3, c.color((0.55, 0.55, 0.58), 0.05))


def car(c: Canvas, x: float, y: float, h: float, label: str = 'car', color=None, side_view=None):
    rng = c.rng
    side_view = rng.random() < 0.4 if side_view is None else side_view
    body = c.color(color if color is not None else CAR_COLORS[rng.integers(len(CAR_COLORS))], 0.05)
    if side_view:
        w = h * rng.uniform(2.1, 2.6)
        shape = [(0, 1), (0, 0.5), (0.1, 0.42), (0.27, 0.05), (0.7, 0.05), (0.86, 0.42), (1, 0.5), (1, 0.92), (0.97, 1)]
    else:
        w = h * rng.uniform(1.15, 1.35)
        shape = [(0, 1), (0, 0.45), (0.12, 0.4), (0.2, 0.06), (0.8, 0.06), (0.88, 0.4), (1, 0.45), (1, 1)]
    x0, y0 = x - w / 2, y - h
    if side_view and rng.random() < 0.5:
        shape = [(1 - a, b) for a, b in shape]
    poly = [[x0 + a * w, y0 + b * h] for a, b in shape]
    u, v = c.local((x0, y0, w, h))
    tex = c.fill(body) * (0.75 + 0.35 * np.clip(1 - v, 0, 1))[..., None]
    glass = c.color((0.15, 0.18, 0.24), 0.04) + 0.25 * np.clip(u - v, 0, 1)[..., None]
    if side_view:
        put(tex, (v > 0.12) & (v < 0.42) & (u > 0.24) & (u < 0.8) & (np.abs(u - 0.52) > 0.02), glass)
        wheels(c, tex, [(x0 + 0.2 * w, y0 + 0.8 * h), (x0 + 0.8 * w, y0 + 0.8 * h)], 0.2 * h)
    else:
        put(tex, (v > 0.12) & (v < 0.38) & (u > 0.22 + 0.1 * (0.38 - v)) & (u < 0.78 - 0.1 * (0.38 - v)), glass)
        put(tex, (v > 0.45) & (v < 0.56) & ((u < 0.16) | (u > 0.84)), c.color((0.85, 0.1, 0.1), 0.05))
        put(tex, (v > 0.62) & (v < 0.72) & (np.abs(u - 0.5) < 0.12), c.color((0.92, 0.92, 0.9), 0.03))
        put(tex, v > 0.84, c.color((0.08, 0.08, 0.09), 0.03))
    return [(label, poly, tex + c.fine(0.02))]


def truck(c: Canvas, x: float, y: float, h: float):
    rng = c.rng
    box_col = c.color(((0.9, 0.9, 0.9), (0.7, 0.15, 0.1), (0.2, 0.3, 0.6), (0.85, 0.75, 0.2))[rng.integers(4)])
    if rng.random() < 0.5:  # side view: cargo box and cab
        w = h * rng.uniform(2.2, 2.8)
        shape = [(0, 0.92), (0, 0), (0.7, 0), (0.7, 0.28), (0.9, 0.3), (1, 0.55), (1, 0.92), (0.95, 1), (0.05, 1)]
        if rng.random() < 0.5:
            shape = [(1 - a, b) for a, b in shape]
        x0, y0 = x - w / 2, y - h
        u, v = c.local((x0, y0, w, h))
        flip = shape[1][0] == 1
        uu = 1 - u if flip else u
        tex = c.fill(box_col) * (1 + 0.04 * np.sin(uu * rng.uniform(40, 90)))[..., None]
        put(tex, (uu > 0.72) & (v < 0.9), c.color((0.3, 0.3, 0.35)))
        put(tex, (uu > 0.78) & (uu < 0.93) & (v > 0.34) & (v < 0.52), c.color((0.15, 0.18, 0.24), 0.03))
        wheels(c, tex, [(x0 + a * w, y0 + 0.86 * h) for a in ((0.15, 0.3, 0.85) if not flip else (0.15, 0.7, 0.85))],
               0.14 * h)
    else:  # rear view: a box
        w = h * rng.uniform(0.85, 1.0)
        shape = [(0, 0), (1, 0), (1, 0.9), (0.92, 1), (0.08, 1), (0, 0.9)]
        x0, y0 = x - w / 2, y - h
        u, v = c.local((x0, y0, w, h))
        tex = c.fill(box_col) * (0.9 + 0.1 * np.sin(u * 40))[..., None]
        put(tex, np.abs(u - 0.5) < 0.015, box_col * 0.6)
        put(tex, v > 0.86, c.color((0.08, 0.08, 0.09), 0.02))
        put(tex, (v > 0.78) & (v < 0.84) & ((u < 0.12) | (u > 0.88)), c.color((0.9, 0.15, 0.1), 0.05))
    poly = [[x0 + a * w, y0 + b * h] for a, b in shape]
    return [('truck', poly, tex + c.fine(0.02))]


def bus(c: Canvas, x: float, y: float, h: float):
    rng = c.rng
    col = c.color(((0.85, 0.15, 0.1), (0.95, 0.8, 0.1), (0.15, 0.35, 0.7), (0.92, 0.92, 0.9))[rng.integers(4)])
    side = rng.random() < 0.55
    w = h * (rng.uniform(2.8, 3.6) if side else rng.uniform(0.85, 0.95))
    x0, y0 = x - w / 2, y - h
    r = 0.06
    shape = [(0, 0.94), (0, r), (r * h / w, 0), (1 - r * h / w, 0), (1, r), (1, 0.94), (0.97, 1), (0.03, 1)]
    poly = [[x0 + a * w, y0 + b * h] for a, b in shape]
    u, v = c.local((x0, y0, w, h))
    tex = c.fill(col) * (0.85 + 0.2 * (1 - v))[..., None]
    glass = c.color((0.12, 0.15, 0.2), 0.03) + 0.2 * np.clip(u - v, 0, 1)[..., None]
    if side:
        n_win = rng.integers(5, 9)
        put(tex, (v > 0.14) & (v < 0.48) & ((u * n_win) % 1.0 < 0.85) & (u > 0.03) & (u < 0.97), glass)
        put(tex, (v > 0.2) & (v < 0.92) & (np.abs(u - 0.18) < 0.04), glass * 0.8)  # door
        wheels(c, tex, [(x0 + 0.15 * w, y0 + 0.88 * h), (x0 + 0.8 * w, y0 + 0.88 * h)], 0.11 * h)
    else:
        put(tex, (v > 0.1) & (v < 0.5) & (u > 0.07) & (u < 0.93), glass)
        put(tex, (v > 0.03) & (v < 0.08) & (u > 0.25) & (u < 0.75), c.color((0.95, 0.6, 0.1), 0.05))
        put(tex, v > 0.9, c.color((0.1, 0.1, 0.1), 0.02))
    return [('bus', poly, tex + c.fine(0.02))]


def person_shape(rng: np.random.Generator, stride: float) -> List[Tuple[float, float]]:
    """Silhouette of a standing person in box coordinates, legs apart by ``stride``."""
    a = rng.uniform(0.0, 0.08)  # arm swing
    s = stride
    return [(0.4, 0), (0.6, 0), (0.64, 0.08), (0.58, 0.14), (0.86, 0.18), (0.95 + a, 0.5), (0.84, 0.52), (0.8, 0.32),
            (0.78, 0.56), (0.62 + s, 1.0), (0.5 + s * 0.2, 1.0), (0.5, 0.66), (0.5 - s * 0.2, 1.0), (0.38 - s, 1.0),
            (0.22, 0.56), (0.2, 0.32), (0.16, 0.52), (0.05 - a, 0.5), (0.14, 0.18), (0.42, 0.14), (0.36, 0.08)]


def person_texture(c: Canvas, box, seated: bool = False) -> np.ndarray:
    rng = c.rng
    u, v = c.local(box)
    tex = c.fill(c.color(CLOTHES[rng.integers(len(CLOTHES))], 0.08))  # shirt / jacket
    put(tex, v > (0.72 if seated else 0.56), c.color(CLOTHES[rng.integers(len(CLOTHES))], 0.08))  # trousers
    skin = c.color(SKIN[rng.integers(len(SKIN))], 0.04)
    put(tex, v < 0.15, skin)
    put(tex, v < 0.05 + 0.03 * rng.random(), c.color((0.12, 0.09, 0.06), 0.05))  # hair
    put(tex, v > 0.96, c.color((0.05, 0.05, 0.05), 0.02))
    return tex * (0.85 + 0.075 * np.clip(c.smooth(4), -1, 1)[..., None]) + c.fine(0.02)


def person(c: Canvas, x: float, y: float, h: float):
    w = h * c.rng.uniform(0.3, 0.42)
    x0, y0 = x - w / 2, y - h
    shape = person_shape(c.rng, c.rng.uniform(0.0, 0.1))
    poly = [[x0 + a * w, y0 + b * h] for a, b in shape]
    return [('person', poly, person_texture(c, (x0, y0, w, h)))]


def two_wheeler(c: Canvas, x: float, y: float, h: float, kind: str, rider: bool):
    """A bicycle or motorcycle seen from the side (``h``: the rider's height), with a rider on it or parked."""
    rng = c.rng
    hv = h * (0.5 if kind == 'bicycle' else 0.55)  # vehicle height
    w = hv * (1.75 if kind == 'bicycle' else 2.0)
    x0, y0 = x - w / 2, y - hv
    r = hv * (0.4 if kind == 'bicycle' else 0.36)
    lc, rc = (x0 + r, y - r), (x0 + w - r, y - r)
    top = y0 + (0.08 if kind == 'bicycle' else 0.2) * hv
    pts = ellipse(*lc, r, r, 8, np.pi / 2, 3 * np.pi / 2)
    pts += [(lc[0] + 0.3 * r, top + 0.2 * hv), (x0 + 0.3 * w, top), (x0 + 0.55 * w, top + 0.25 * hv),
            (x0 + 0.78 * w, y0)]
    pts += ellipse(*rc, r, r, 8, -np.pi / 2, np.pi / 2)
    pts += [(rc[0] - r * 0.9, y - (0.15 if kind == 'bicycle' else 0.05) * hv),
            (lc[0] + r * 0.9, y - (0.15 if kind == 'bicycle' else 0.05) * hv)]
    flip = rng.random() < 0.5
    if flip:
        pts = [(2 * x - px, py) for px, py in pts]
    frame = c.color(CAR_COLORS[rng.integers(len(CAR_COLORS))], 0.08)
    tex = c.fill(c.color((0.35, 0.35, 0.37), 0.1)) * (1 + 0.2 * c.smooth(2)[..., None])
    u, v = c.local((x0, y0, w, hv))
    if kind == 'motorcycle':
        put(tex, (v < 0.7) & (u > 0.2) & (u < 0.85), frame)
        put(tex, (v > 0.45) & (v < 0.75) & (np.abs(u - 0.5) < 0.12), c.color((0.55, 0.55, 0.58), 0.05))
    else:
        put(tex, (np.abs(v - 0.3 - 0.4 * np.abs(u - 0.5)) < 0.08) & (u > 0.25) & (u < 0.8), frame)
    for cx, cy in ((lc, rc) if not flip else ((2 * x - lc[0], lc[1]), (2 * x - rc[0], rc[1]))):
        d = in_ellipse(c.xx, c.yy, cx, cy, r, r)
        put(tex, (d < 1) & (d > 0.6), c.color((0.05, 0.05, 0.06), 0.02))
    out = [(kind, [[px, py] for px, py in pts], tex + c.fine(0.02))]
    if rider:
        rh, rw = h * 0.78, h * 0.36
        rx0, ry0 = x - rw / 2 + (0.05 if flip else -0.05) * w, y - hv * 0.55 - rh
        shape = [(0.4, 0), (0.6, 0), (0.64, 0.08), (0.58, 0.14), (0.85, 0.2), (1.0, 0.45), (0.88, 0.5), (0.8, 0.36),
                 (0.8, 0.7), (0.9, 1.0), (0.72, 1.0), (0.52, 0.8), (0.3, 0.8), (0.22, 0.55), (0.14, 0.18), (0.42, 0.14),
                 (0.36, 0.08)]
        if flip:
            shape = [(1 - a, b) for a, b in shape]
        poly = [[rx0 + a * rw, ry0 + b * rh] for a, b in shape]
        out.append(('rider', poly, person_texture(c, (rx0, ry0, rw, rh), seated=True)))
    return out


def crowd(c: Canvas, x: float, y: float, h: float, kind: str):
    """A crowd group (``persongroup``, ``cargroup`` or ``bicyclegroup``): one polygon, no instances."""
    rng = c.rng
    n = int(rng.integers(3, 7))
    if kind == 'persongroup':
        widths = rng.uniform(0.22, 0.32, n) * h
        heights = rng.uniform(0.85, 1.05, n) * h
    elif kind == 'cargroup':
        h = h * 0.75
        widths = rng.uniform(1.2, 1.8, n) * h
        heights = rng.uniform(0.85, 1.0, n) * h
    else:
        h = h * 0.5
        widths = rng.uniform(0.45, 0.6, n) * h * 1.75
        heights = rng.uniform(0.85, 1.0, n) * h
    total = widths.sum()
    x0 = x - total / 2
    pts, xs = [(x0, y)], np.concatenate([[x0], x0 + np.cumsum(widths)])
    tex = c.fill((0.3, 0.3, 0.3))
    for i in range(n):
        a, b, hh = xs[i], xs[i + 1], heights[i]
        mid, bw = (a + b) / 2, b - a
        if kind == 'persongroup':
            pts += [(a, y - 0.8 * hh), (mid - 0.2 * bw, y - 0.86 * hh), (mid - 0.15 * bw, y - hh),
                    (mid + 0.15 * bw, y - hh), (mid + 0.2 * bw, y - 0.86 * hh), (b, y - 0.8 * hh)]
            col = (c.xx >= a) & (c.xx < b)
            put(tex, col, c.color(CLOTHES[rng.integers(len(CLOTHES))], 0.08))
            put(tex, col & (c.yy > y - 0.45 * hh), c.color(CLOTHES[rng.integers(len(CLOTHES))], 0.08))
            put(tex, col & (c.yy < y - 0.84 * hh), c.color(SKIN[rng.integers(len(SKIN))], 0.04))
        elif kind == 'cargroup':
            pts += [(a, y - 0.5 * hh), (a + 0.25 * bw, y - 0.95 * hh), (b - 0.25 * bw, y - 0.95 * hh),
                    (b, y - 0.5 * hh)]
            col = (c.xx >= a) & (c.xx < b)
            put(tex, col, c.color(CAR_COLORS[rng.integers(len(CAR_COLORS))], 0.05))
            put(tex, col & (c.yy < y - 0.55 * hh) & (np.abs(c.xx - mid) < 0.3 * bw), c.color((0.15, 0.18, 0.24)))
            wheels(c, tex, [(a + 0.2 * bw, y - 0.2 * hh), (b - 0.2 * bw, y - 0.2 * hh)], 0.18 * hh)
        else:
            pts += [(a, y - 0.5 * hh), (mid, y - hh), (b, y - 0.5 * hh)]
            r = 0.22 * bw
            for cx in (a + r, b - r):
                d = in_ellipse(c.xx, c.yy, cx, y - r, r, r)
                put(tex, (d < 1) & (d > 0.55), c.color((0.05, 0.05, 0.06), 0.02))
    pts.append((xs[-1], y))
    return [(kind, [[px, py] for px, py in pts], tex * (1 + 0.15 * c.smooth(3)[..., None]) + c.fine(0.02))]


def tree(c: Canvas, x: float, y: float, h: float):
    rng = c.rng
    tw = max(h * 0.06, 1.0)
    crown_r = h * rng.uniform(0.25, 0.4)
    cy = y - h + crown_r
    trunk = [[x - tw, y], [x - tw, cy], [x + tw, cy], [x + tw, y]]
    ttex = c.fill(c.color((0.32, 0.24, 0.16), 0.05)) * (1 + 0.1 * c.smooth(2)[..., None])
    crown = ellipse(x, cy, crown_r * rng.uniform(0.8, 1.2), crown_r, 16, rng=rng, wobble=0.2)
    green = c.color((0.25, 0.42, 0.15), 0.08)
    ctex = c.fill(green) * (1 + 0.25 * c.smooth(1.5)[..., None] + 0.15 * c.smooth(5)[..., None])
    return [('vegetation', trunk, ttex), ('vegetation', [[px, py] for px, py in crown], ctex)]


def pole(c: Canvas, x: float, y: float, h: float):
    rng = c.rng
    pw = max(h * 0.035, 0.8)
    top = y - h * rng.uniform(1.1, 1.5)
    tex = c.fill(c.color((0.45, 0.45, 0.47), 0.06)) * (1 + 0.1 * np.sin(c.xx))[..., None]
    out = [('pole', [[x - pw, y], [x - pw, top], [x + pw, top], [x + pw, y]], tex)]
    if rng.random() < 0.4:  # a traffic sign on it
        r = max(h * 0.09, 1.5)
        if rng.random() < 0.5:
            sign = ellipse(x, top + r, r, r, 10)
        else:
            sign = [(x - r, top), (x + r, top), (x + r, top + 2 * r), (x - r, top + 2 * r)]
        stex = c.fill(c.color(((0.8, 0.1, 0.1), (0.1, 0.3, 0.7), (0.9, 0.8, 0.1))[rng.integers(3)], 0.05))
        put(stex, in_ellipse(c.xx, c.yy, x, top + r, r * 0.6, r * 0.6) < 1, c.color((0.95, 0.95, 0.95), 0.03))
        out.append(('traffic sign', [[px, py] for px, py in sign], stex))
    return out


# ---------------------------------------------------------------------------------- scene composition
def compose(c: Canvas) -> List[Tuple[str, Polygon, Texture]]:
    """The objects of one scene, in drawing order (later ones occlude earlier ones)."""
    rng, h, w = c.rng, c.h, c.w
    st = Street(c)
    # sky, then the ground up to the horizon, the facades standing on it, the road in front of everything
    layers = [paint_sky(c, st)] + paint_sidewalks(c, st) + paint_facades(c, st) + [paint_road(c, st)]

    things = []  # (y_foot, painter)

    def depth_row(lo=0.06, hi=1.0, power=1.4):
        s = lo + (hi - lo) * rng.random()**power
        return st.yh + s * (h - st.yh), s

    def on_road(y, spread=0.75):
        xl, xr = st.road_x(y, -1), st.road_x(y, 1)
        return (xl + xr) / 2 + rng.uniform(-spread, spread) * (xr - xl) / 2

    def on_sidewalk(y):
        side = -1 if rng.random() < 0.5 else 1
        edge = st.road_x(y, side)
        lo, hi = (0.0, edge) if side < 0 else (edge, w - 1.0)
        near_road = edge - side * rng.uniform(0.02, 0.35) * (hi - lo + 1)
        return float(np.clip(near_road, 0, w - 1))

    vehicles = []  # (y_foot, x, height) of the cars, trucks and buses on the road
    for _ in range(rng.poisson(2.5)):
        y, s = depth_row()
        x = on_road(y)
        vehicles.append((y, x, 0.42 * h * s))
        things.append((y, lambda y=y, s=s, x=x: car(c, x, y, 0.42 * h * s)))
    for _ in range(rng.poisson(1.2)):  # parked along the kerb, side view
        y, s = depth_row(0.1, 0.9)
        side = -1 if rng.random() < 0.5 else 1
        x = st.road_x(y, side) - side * 0.3 * 0.42 * h * s * 2.3
        things.append((y, lambda y=y, s=s, x=x: car(c, x, y, 0.42 * h * s, side_view=True)))
    if rng.random() < 0.35:
        y, s = depth_row(0.08, 0.7)
        x = on_road(y)
        vehicles.append((y, x, 0.72 * h * s))
        things.append((y, lambda y=y, s=s, x=x: truck(c, x, y, 0.72 * h * s)))
    if rng.random() < 0.3:
        y, s = depth_row(0.08, 0.65)
        x = on_road(y)
        vehicles.append((y, x, 0.8 * h * s))
        things.append((y, lambda y=y, s=s, x=x: bus(c, x, y, 0.8 * h * s)))
    for _ in range(rng.poisson(2.2)):
        y, s = depth_row(0.08, 1.0)
        x = on_road(y, 1.0) if rng.random() < 0.2 else on_sidewalk(y)
        things.append((y, lambda y=y, s=s, x=x: person(c, x, y, 0.55 * h * s)))
    for _ in range(rng.poisson(0.8)):
        y, s = depth_row(0.08, 0.9)
        kind = 'bicycle' if rng.random() < 0.65 else 'motorcycle'
        x = on_road(y, 0.95)
        things.append((y, lambda y=y, s=s, x=x, kind=kind: two_wheeler(c, x, y, 0.55 * h * s, kind, True)))
    if rng.random() < 0.25:  # parked
        y, s = depth_row(0.1, 0.8)
        kind = 'bicycle' if rng.random() < 0.6 else 'motorcycle'
        x = on_sidewalk(y)
        things.append((y, lambda y=y, s=s, x=x, kind=kind: two_wheeler(c, x, y, 0.55 * h * s, kind, False)))
    if rng.random() < 0.4:
        kind = GROUP_LABELS[rng.integers(len(GROUP_LABELS))]
        y, s = depth_row(0.08, 0.6)
        x = on_sidewalk(y) if kind != 'cargroup' else on_road(y, 0.9)
        things.append((y, lambda y=y, s=s, x=x, kind=kind: crowd(c, x, y, 0.55 * h * s, kind)))
    for _ in range(rng.poisson(1.5)):
        y, s = depth_row(0.05, 0.8, 1.0)
        x = on_sidewalk(y)
        things.append((y, lambda y=y, s=s, x=x: tree(c, x, y, 1.1 * h * s)))
    for _ in range(rng.poisson(1.2)):
        y, s = depth_row(0.05, 1.0, 1.0)
        x = on_sidewalk(y)
        things.append((y, lambda y=y, s=s, x=x: pole(c, x, y, 0.55 * h * s)))
    # now and then an occluder just in front of a vehicle: a pole or a person that splits it in two pieces
    if vehicles and rng.random() < 0.5:
        y, x, vh = vehicles[rng.integers(len(vehicles))]
        y2 = y + rng.uniform(0.5, 3.0)
        x2 = x + rng.uniform(-0.25, 0.25) * vh
        s2 = st.depth(y2)
        if rng.random() < 0.5:
            things.append((y2, lambda y2=y2, s2=s2, x2=x2: pole(c, x2, y2, 0.55 * h * s2)))
        else:
            things.append((y2, lambda y2=y2, s2=s2, x2=x2: person(c, x2, y2, 0.55 * h * s2)))
    things.sort(key=lambda t: t[0])  # far to near: painter's algorithm
    for _, paint in things:
        layers += paint()
    return layers


def compose_simple(c: Canvas) -> List[Tuple[str, Polygon, Texture]]:
    """A simpler scene (``scene='simple'``, for ``make demo``): the same street (sky, facades, sidewalks, road)
    with a few trees, then 1-3 cars on the road and 0-2 persons, all near the camera (large), drawn far to near.
    What real Cityscapes sends through the converter and the box assigner is there too: half of the scenes hold a
    crowd group (``cargroup`` on the road or ``persongroup`` on a sidewalk, the bare class id in ``_instanceIds``,
    an ignore box after conversion) that nearer cars may stand in front of, and in half of them a person stands in
    front of a car, hiding part of it -- a small person (shorter than the car, its box inside the car's box) or a
    tall one that splits the car into pieces. No trucks, buses, two-wheelers, poles or signs: 7 classes (sky,
    building, vegetation, sidewalk, road; car, person), the lighting of :func:`lighting` unchanged."""
    rng, h = c.rng, c.h
    st = Street(c)
    layers = [paint_sky(c, st)] + paint_sidewalks(c, st) + paint_facades(c, st) + [paint_road(c, st)]
    things = []  # (y_foot, painter)

    def depth_row(lo, hi):
        s = rng.uniform(lo, hi)
        return st.yh + s * (h - st.yh), s

    for _ in range(rng.integers(0, 3)):
        y, s = depth_row(0.1, 0.7)
        side = -1 if rng.random() < 0.5 else 1
        edge = st.road_x(y, side)
        x = float(np.clip(edge + side * rng.uniform(0.1, 0.4) * c.w * s, 0, c.w - 1))
        things.append((y, lambda y=y, s=s, x=x: tree(c, x, y, 1.1 * h * s)))
    cars = []  # (y_foot, x, height)
    for _ in range(rng.integers(1, 4)):
        y, s = depth_row(0.35, 1.0)
        xl, xr = st.road_x(y, -1), st.road_x(y, 1)
        x = (xl + xr) / 2 + rng.uniform(-0.6, 0.6) * (xr - xl) / 2
        cars.append((y, x, 0.42 * h * s))
        things.append((y, lambda y=y, s=s, x=x: car(c, x, y, 0.42 * h * s, side_view=False)))
    for _ in range(rng.integers(0, 3)):
        y, s = depth_row(0.4, 1.0)
        side = -1 if rng.random() < 0.5 else 1
        edge = st.road_x(y, side)
        x = float(np.clip(edge + side * rng.uniform(0.02, 0.2) * c.w * s, 2, c.w - 3))
        things.append((y, lambda y=y, s=s, x=x: person(c, x, y, 0.6 * h * s)))
    if rng.random() < 0.5:  # a crowd group behind the cars: an ignore region that labeled cars may overlap
        kind = 'cargroup' if rng.random() < 0.6 else 'persongroup'
        y, s = depth_row(0.3, 0.55)
        if kind == 'cargroup':
            xl, xr = st.road_x(y, -1), st.road_x(y, 1)
            x = (xl + xr) / 2 + rng.uniform(-0.4, 0.4) * (xr - xl) / 2
        else:
            side = -1 if rng.random() < 0.5 else 1
            x = float(np.clip(st.road_x(y, side) + side * rng.uniform(0.05, 0.2) * c.w * s, 2, c.w - 3))
        things.append((y, lambda y=y, s=s, x=x, kind=kind: crowd(c, x, y, 0.6 * h * s, kind)))
    if cars and rng.random() < 0.5:  # a person just in front of a car: occlusion, often a box inside a box
        y, x, ch = cars[rng.integers(len(cars))]
        y2 = y - rng.uniform(0.02, 0.1) * ch  # feet just above the car's bottom edge, drawn right after the car
        x2 = x + rng.uniform(-0.25, 0.25) * ch
        ph = ch * (rng.uniform(0.55, 0.85) if rng.random() < 0.6 else rng.uniform(1.2, 1.5))
        things.append((y + 1e-3, lambda y2=y2, x2=x2, ph=ph: person(c, x2, y2, ph)))
    things.sort(key=lambda t: t[0])
    for _, paint in things:
        layers += paint()
    return layers


SCENES = dict(street=compose, simple=compose_simple)


# -------------------------------------------------------------------------------------- rendering
def lighting(c: Canvas, img: np.ndarray, shadow: Optional[np.ndarray]) -> np.ndarray:
    """Per-image photometric conditions: shadows, exposure, white balance, gamma, haze, noise, blur."""
    rng = c.rng
    if shadow is not None:
        soft = cv2.GaussianBlur(shadow.astype(np.float32), (0, 0), 1.5)[..., None]
        img = img * (1 - soft * rng.uniform(0.3, 0.55))
    img = img * rng.uniform(0.55, 1.3) * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    img = np.clip(img, 0, 1)**rng.uniform(0.8, 1.25)
    if rng.random() < 0.3:  # haze
        f = rng.uniform(0.1, 0.35)
        img = img * (1 - f) + f * c.color((0.75, 0.77, 0.8), 0.05)
    img = img + c.fine(rng.uniform(0.005, 0.03))
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    return np.clip(img, 0, 1)


def render(layers: Sequence[Tuple[str, Polygon, Texture]], c: Canvas) -> Tuple[np.ndarray, dict]:
    """The RGB image (H, W, 3) uint8 and the polygon annotation of clipped, non-empty polygons."""
    img = np.zeros((c.h, c.w, 3), np.float32)
    objects = []
    for label, poly, tex in layers:
        poly = clip_polygon(poly, c.w, c.h)
        if len(poly) < 3:
            continue
        mask = Image.new('L', (c.w, c.h), 0)
        ImageDraw.Draw(mask).polygon([tuple(p) for p in poly], fill=1)  # as cityscapesscripts rasterises
        mask = np.asarray(mask, bool)
        if not mask.any():
            continue
        img[mask] = tex[mask]
        objects.append(dict(label=label, polygon=poly))
    shadow = None
    if c.rng.random() < 0.5:  # sunny: a cast shadow across the lower part
        x_a, x_b = c.rng.uniform(-0.2, 1.2, 2) * c.w
        y_a = c.rng.uniform(0.45, 0.75) * c.h
        shadow = Image.new('L', (c.w, c.h), 0)
        ImageDraw.Draw(shadow).polygon([(x_a, y_a), (x_b, c.h), (c.w if x_b > x_a else 0, c.h)], fill=1)
        shadow = np.asarray(shadow, bool)
    img = lighting(c, img, shadow)
    return (img * 255 + 0.5).astype(np.uint8), dict(imgHeight=c.h, imgWidth=c.w, objects=objects)


def label_maps(annotation: dict) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``labelIds`` (uint8), ``instanceIds`` (uint16) and ``color`` (RGBA) of a polygon annotation, made by
    cityscapesscripts' ``createLabelImage`` / ``createInstanceImage`` (as ``json2labelImg`` /
    ``json2instanceImg`` do for the official files)."""
    ann = Annotation()
    ann.fromJsonText(json.dumps(annotation))
    label_ids = np.asarray(createLabelImage(ann, 'ids'), np.uint8)
    instance_ids = np.asarray(createInstanceImage(ann, 'ids'), np.int64)
    assert instance_ids.max() < 65536
    color = np.asarray(createLabelImage(ann, 'color'), np.uint8)
    return label_ids, instance_ids.astype(np.uint16), color


def generate_scene(seed: int, split: str, index: int, height: int = 128, width: int = 256, scene: str = 'street'):
    """One scene: ``(image RGB uint8, polygon annotation dict)`` from the stream ``[seed, split, index]``;
    ``scene`` names the composer (:data:`SCENES`: ``'street'`` or ``'simple'``)."""
    if scene not in SCENES:
        raise ValueError(f'scene must be one of {sorted(SCENES)}, got {scene!r}')
    rng = np.random.default_rng([seed, SPLIT_CODES[split], index])
    c = Canvas(rng, height, width)
    return render(SCENES[scene](c), c)


def stem_of(split: str, index: int) -> Tuple[str, str]:
    """City and file stem ``<city>_<seq:06d>_<frame:06d>`` of image ``index`` of ``split``."""
    cities = CITIES[split]
    city = cities[index % len(cities)]
    return city, f'{city}_{index // len(cities):06d}_{FRAME:06d}'


def write_image(job: Tuple[str, int, str, int, int, int, str]) -> dict:
    """Write the image and the gtFine files of one scene; return its per-class counts."""
    root, seed, split, index, height, width, scene = job
    img, annotation = generate_scene(seed, split, index, height, width, scene)
    city, stem = stem_of(split, index)
    img_dir = osp.join(root, 'leftImg8bit', split, city)
    gt_dir = osp.join(root, 'gtFine', split, city)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(gt_dir, exist_ok=True)
    gt = osp.join(gt_dir, f'{stem}_gtFine')
    with open(f'{gt}_polygons.json', 'w') as f:
        json.dump(annotation, f, indent=4)
    label_ids, instance_ids, color = label_maps(annotation)
    cv2.imwrite(osp.join(img_dir, f'{stem}_leftImg8bit.png'), img[..., ::-1])
    Image.fromarray(label_ids).save(f'{gt}_labelIds.png')
    assert cv2.imwrite(f'{gt}_instanceIds.png', instance_ids)  # 16-bit PNG, as the official files
    Image.fromarray(color, 'RGBA').save(f'{gt}_color.png')
    inst = np.unique(instance_ids[instance_ids >= 1000])
    groups = np.unique(instance_ids[np.isin(instance_ids, INSTANCE_CLASS_IDS)])  # bare id of an instance class
    return dict(instances=len(inst), crowd_groups=len(groups))


def write_synthetic_cityscapes(root: str,
                               num_train: int = 240,
                               num_val: int = 40,
                               height: int = 128,
                               width: int = 256,
                               seed: int = 0,
                               nproc: int = 1,
                               progress: Optional[Callable[[int, int], None]] = None,
                               num_test: int = 0,
                               scene: str = 'street') -> dict:
    """Write ``num_train`` + ``num_val`` (+ ``num_test``) scenes under ``root`` in the official Cityscapes layout.

    Args:
        root (str): The data root (gets ``leftImg8bit/`` and ``gtFine/``).
        num_train, num_val (int): Images per split.
        num_test (int): Images of a ``test`` split (default 0: none), labeled like the others (unlike the
            official test split, whose public labels are empty).
        scene (str): ``'street'`` (every class, crowds, occlusions) or ``'simple'`` (:func:`compose_simple`).
        height, width (int): Image size in pixels.
        seed (int): Seed; the same seed writes the same files.
        nproc (int): Worker processes.
        progress (callable, optional): Called as ``progress(done, total)``.

    Returns:
        dict: Per split: ``images``, ``instances`` (pixel-visible instances) and ``crowd_groups``.
    """
    if scene not in SCENES:
        raise ValueError(f'scene must be one of {sorted(SCENES)}, got {scene!r}')
    sizes = [('train', num_train), ('val', num_val)] + ([('test', num_test)] if num_test else [])
    jobs = [(root, seed, split, i, height, width, scene) for split, n in sizes for i in range(n)]
    if nproc > 1:
        from multiprocessing import get_context
        with get_context('fork').Pool(nproc) as pool:
            stats = []
            for s in pool.imap(write_image, jobs, chunksize=4):
                stats.append(s)
                if progress:
                    progress(len(stats), len(jobs))
    else:
        stats = []
        for job in jobs:
            stats.append(write_image(job))
            if progress:
                progress(len(stats), len(jobs))
    summary = {}
    for split, n in sizes:
        part = [s for j, s in zip(jobs, stats) if j[2] == split]
        summary[split] = dict(
            images=n, instances=sum(s['instances'] for s in part), crowd_groups=sum(s['crowd_groups'] for s in part))
    return summary


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description='Write a seeded synthetic street-scene set in the official '
                                     'Cityscapes layout (leftImg8bit/, gtFine/).')
    parser.add_argument('root')
    parser.add_argument('--num-train', type=int, default=240)
    parser.add_argument('--num-val', type=int, default=40)
    parser.add_argument('--num-test', type=int, default=0)
    parser.add_argument('--scene', choices=sorted(SCENES), default='street')
    parser.add_argument('--height', type=int, default=128)
    parser.add_argument('--width', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--nproc', type=int, default=1)
    args = parser.parse_args(argv)
    for flag, least in (('height', 1), ('width', 1), ('num_train', 0), ('num_val', 0), ('num_test', 0)):
        if getattr(args, flag) < least:  # bad command-line input: one line and exit status 2, no traceback
            parser.exit(
                2, f'{parser.prog}: error: --{flag.replace("_", "-")} must be >= {least}, got '
                f'{getattr(args, flag)}\n')
    summary = write_synthetic_cityscapes(
        args.root,
        args.num_train,
        args.num_val,
        args.height,
        args.width,
        args.seed,
        args.nproc,
        num_test=args.num_test,
        scene=args.scene)
    print(json.dumps(summary))
    return summary


if __name__ == '__main__':
    main()
