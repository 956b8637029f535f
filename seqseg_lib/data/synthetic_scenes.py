"""The renderer of ``SyntheticCityscapes``: procedural street scenes in the Cityscapes label space.

``render_scene(rng, height, width)`` draws one scene with a pinhole camera over a flat street:
road in perspective towards a vanishing point, sidewalks, terrain verges, building facades
with windows, walls, fences and vegetation along both sides, distant buildings, then poles
(with traffic signs and lights), trees, people, bicycles, riders, cars, buses and trucks
drawn far to near so that nearer objects occlude further ones. Lighting, shadows, haze,
texture and noise make colour alone a poor classifier, and thin objects (poles, signs,
people far away) are a few pixels wide, which is what separates a 16x16-patch transformer
from a U-Net.

Everything is vectorised numpy (coordinate grids and masks) plus PIL for polygons; a
256x512 scene takes a few tens of milliseconds.
"""

import math
from dataclasses import dataclass
from functools import partial

import numpy as np
from cityscapesscripts.helpers.labels import labels as _cityscapes_labels
from PIL import Image, ImageDraw

from seqseg_lib.data.labels import CITYSCAPES_IDS

EGO = CITYSCAPES_IDS["ego vehicle"]
ROAD = CITYSCAPES_IDS["road"]
SIDEWALK = CITYSCAPES_IDS["sidewalk"]
BUILDING = CITYSCAPES_IDS["building"]
WALL = CITYSCAPES_IDS["wall"]
FENCE = CITYSCAPES_IDS["fence"]
POLE = CITYSCAPES_IDS["pole"]
TRAFFIC_LIGHT = CITYSCAPES_IDS["traffic light"]
TRAFFIC_SIGN = CITYSCAPES_IDS["traffic sign"]
VEGETATION = CITYSCAPES_IDS["vegetation"]
TERRAIN = CITYSCAPES_IDS["terrain"]
SKY = CITYSCAPES_IDS["sky"]
PERSON = CITYSCAPES_IDS["person"]
RIDER = CITYSCAPES_IDS["rider"]
CAR = CITYSCAPES_IDS["car"]
TRUCK = CITYSCAPES_IDS["truck"]
BUS = CITYSCAPES_IDS["bus"]
BICYCLE = CITYSCAPES_IDS["bicycle"]

THING_IDS = frozenset(
    label.id for label in _cityscapes_labels if label.hasInstances and label.id >= 0
)
# labelId -> the official colour of the *_gtFine_color.png files
LABEL_COLOURS = np.zeros((256, 3), np.uint8)
LABEL_COLOURS[[label.id for label in _cityscapes_labels if label.id >= 0]] = [
    label.color for label in _cityscapes_labels if label.id >= 0
]

# Surface colours (RGB, 0..255). Greys recur across buildings, road, sidewalk, poles, walls
# and cars on purpose: colour alone must not identify the class.
_BUILDING_COLOURS = np.array(
    [
        [125, 125, 122],
        [150, 146, 140],
        [190, 172, 142],
        [172, 150, 118],
        [150, 84, 64],
        [128, 92, 72],
        [205, 200, 190],
        [200, 182, 125],
        [110, 118, 132],
        [96, 96, 96],
    ],
    np.float32,
)
_VEHICLE_COLOURS = np.array(
    [
        [24, 24, 26],
        [222, 222, 220],
        [168, 170, 172],
        [108, 110, 112],
        [150, 28, 30],
        [30, 52, 118],
        [18, 32, 70],
        [56, 84, 60],
        [196, 180, 140],
        [200, 150, 30],
    ],
    np.float32,
)
_CLOTHES = np.array(
    [
        [20, 20, 24],
        [40, 44, 70],
        [90, 90, 95],
        [150, 30, 40],
        [200, 200, 196],
        [60, 90, 140],
        [110, 80, 50],
        [40, 80, 50],
        [170, 150, 110],
        [230, 190, 60],
    ],
    np.float32,
)
_SKIN = np.array([[225, 180, 150], [190, 140, 105], [140, 95, 65], [95, 62, 42]], np.float32)


@dataclass(frozen=True)
class _Frame:
    """Pixel coordinates of points on an upright plane facing the camera at depth ``z``."""

    x: float
    z: float
    camera: "_Camera"

    @property
    def scale(self) -> float:
        """Pixels per metre at this depth."""
        return self.camera.focal / self.z

    def col(self, dx: float) -> float:
        return self.camera.col(self.x + dx, self.z)

    def row(self, y: float) -> float:
        return self.camera.row(y, self.z)

    def rect(self, y0: float, y1: float, dx0: float, dx1: float) -> tuple[float, ...]:
        """(top, bottom, left, right) in pixels of the box ``y0..y1`` high, ``dx0..dx1`` wide."""
        return self.row(y1), self.row(y0), self.col(dx0), self.col(dx1)


@dataclass(frozen=True)
class _Camera:
    """Pinhole camera over a flat ground: metres ``(x right, y up, z ahead)`` to pixels."""

    horizon: float  # image row of the horizon
    vanish_x: float  # image column of the vanishing point
    focal: float  # pixels
    height: float  # metres above the ground

    def col(self, x, z):
        return self.vanish_x + self.focal * x / z

    def row(self, y, z):
        return self.horizon + self.focal * (self.height - y) / z

    def frame(self, x: float, z: float) -> _Frame:
        return _Frame(x, z, self)


@dataclass(frozen=True)
class _Street:
    """Lateral layout in metres (camera at x = 0) and the depth where the street ends."""

    road: tuple[float, float]  # left and right kerb, left < 0 < right
    sidewalk: tuple[float, float]  # widths, left and right
    verge: tuple[float, float]  # terrain between sidewalk and facades, left and right
    far: float  # depth of the buildings closing the street

    @property
    def facades(self) -> tuple[float, float]:
        left = self.road[0] - self.sidewalk[0] - self.verge[0]
        return left, self.road[1] + self.sidewalk[1] + self.verge[1]


class _Canvas:
    """Layers being painted: colour [H, W, 3] float32 0..255, labelIds [H, W] and object ids.

    ``objects`` holds 0 for stuff and a running id per thing; painting stuff over a thing
    resets it, so after painting far to near only the visible part of each instance is left.
    """

    def __init__(self, height: int, width: int, rng: np.random.Generator) -> None:
        self.height, self.width = height, width
        self.rgb = np.zeros((height, width, 3), np.float32)
        self.labels = np.zeros((height, width), np.uint8)
        self.objects = np.zeros((height, width), np.int32)
        self.object_labels = [0]
        self.ys = np.arange(height, dtype=np.float32) + 0.5  # pixel centres
        self.xs = np.arange(width, dtype=np.float32) + 0.5
        self.tex_lo = _noise_field(rng, height, width, 24)  # broad blotches, [-1, 1]
        self.tex_hi = _noise_field(rng, height, width, 3)  # foliage-scale grain, [-1, 1]

    def new_object(self, label: int) -> int:
        assert label in THING_IDS, f"labelId {label} has no instances"
        self.object_labels.append(label)
        return len(self.object_labels) - 1

    def window(self, top, bottom, left, right):
        """Slices and pixel-centre grids ([h, 1], [1, w]) of a box clipped to the image."""
        r0, r1 = max(math.floor(top), 0), min(math.ceil(bottom), self.height)
        c0, c1 = max(math.floor(left), 0), min(math.ceil(right), self.width)
        if r0 >= r1 or c0 >= c1:
            return None
        return (slice(r0, r1), slice(c0, c1)), self.ys[r0:r1, None], self.xs[None, c0:c1]

    def rect(self, top, bottom, left, right):
        """Mask of a box (either corner order); boxes thinner than a pixel keep one pixel, so
        far poles stay visible."""
        top, bottom = min(top, bottom), max(top, bottom)
        left, right = min(left, right), max(left, right)
        if bottom - top < 1:
            top, bottom = (top + bottom) / 2 - 0.5, (top + bottom) / 2 + 0.5
        if right - left < 1:
            left, right = (left + right) / 2 - 0.5, (left + right) / 2 + 0.5
        win = self.window(top, bottom, left, right)
        if win is None:
            return None
        slices, ys, xs = win
        return slices, (ys >= top) & (ys < bottom) & (xs >= left) & (xs < right)

    def ellipse(self, cy, cx, ry, rx, hole: float = 0.0):
        """Mask of a filled ellipse, or a ring when ``hole`` (inner / outer radius) > 0."""
        ry, rx = max(ry, 0.5), max(rx, 0.5)
        win = self.window(cy - ry, cy + ry, cx - rx, cx + rx)
        if win is None:
            return None
        slices, ys, xs = win
        radius = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2
        return slices, (radius <= 1) & (radius >= hole**2)

    def polygon(self, points, line_width: int = 0):
        """Mask of a filled polygon (or, with ``line_width``, a polyline), points as (col, row)."""
        cols, rows = zip(*points, strict=True)
        pad = line_width + 1
        win = self.window(min(rows) - pad, max(rows) + pad, min(cols) - pad, max(cols) + pad)
        if win is None:
            return None
        slices, _, _ = win
        top, left = slices[0].start, slices[1].start
        image = Image.new("L", (slices[1].stop - left, slices[0].stop - top))
        local = [(c - left - 0.5, r - top - 0.5) for c, r in points]
        if line_width:
            ImageDraw.Draw(image).line(local, fill=1, width=line_width)
        else:
            ImageDraw.Draw(image).polygon(local, fill=1)
        return slices, np.asarray(image, dtype=bool)

    def paint(self, shape, label: int, colour, obj: int = 0, texture: float = 0.0) -> None:
        """Fill ``shape`` (from ``rect`` / ``ellipse`` / ``polygon``) with a label and colour.

        ``colour`` is RGB, broadcastable to the window [h, w, 3]; ``texture`` modulates it by
        the broad noise field. Things need ``obj``; stuff clears the object id underneath.
        """
        if shape is None:
            return
        assert (obj > 0) == (label in THING_IDS), f"labelId {label} painted with object {obj}"
        slices, mask = shape
        colour = np.asarray(colour, np.float32)
        if texture:
            colour = colour * (1 + texture * self.tex_lo[slices][..., None])
        self.rgb[slices][mask] = colour if colour.ndim == 1 else colour[mask]
        self.labels[slices][mask] = label
        self.objects[slices][mask] = obj

    def shade(self, shape, factor: float) -> None:
        """Darken colour only (contact shadows); labels are unchanged."""
        if shape is not None:
            slices, mask = shape
            self.rgb[slices][mask] *= factor

    def instances(self) -> np.ndarray:
        """Official encoding [H, W] int32: labelId * 1000 + k for things, the labelId elsewhere.

        ``k`` counts the visible instances of each class in drawing order (far to near).
        """
        visible = np.unique(self.objects[self.objects > 0])
        lut = np.zeros(len(self.object_labels), np.int32)
        counts: dict[int, int] = {}
        for obj in visible:
            label = self.object_labels[obj]
            lut[obj] = label * 1000 + counts.get(label, 0)
            counts[label] = counts.get(label, 0) + 1
        encoded = self.labels.astype(np.int32)
        things = self.objects > 0
        encoded[things] = lut[self.objects[things]]
        assert np.array_equal(things, np.isin(self.labels, list(THING_IDS))), "thing without id"
        return encoded


def _noise_field(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Smooth noise [H, W] in [-1, 1]: a coarse random grid upsampled bilinearly."""
    coarse = rng.uniform(-1, 1, (height // cell + 2, width // cell + 2)).astype(np.float32)
    image = Image.fromarray(coarse, mode="F").resize((width, height), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32)


def _jitter(rng: np.random.Generator, colour, amount: float = 12.0) -> np.ndarray:
    noisy = np.asarray(colour, np.float32) + rng.normal(0, amount, 3).astype(np.float32)
    return np.clip(noisy, 0, 255)


# ---------------------------------------------------------------------------- layout


def _sample_layout(rng: np.random.Generator, height: int, width: int) -> tuple[_Camera, _Street]:
    """Camera and street; the vanishing point and lane position vary per image."""
    camera = _Camera(
        horizon=height * rng.uniform(0.36, 0.5),
        vanish_x=width * rng.uniform(0.3, 0.7),
        focal=width * rng.uniform(0.65, 0.95),
        height=rng.uniform(1.2, 1.6),
    )
    road_width = rng.uniform(6.5, 15.0)
    left = -road_width * rng.uniform(0.25, 0.75)
    sidewalk = (rng.uniform(1.5, 4.5), rng.uniform(1.5, 4.5))
    verge = tuple(rng.uniform(0.5, 3.5) if rng.random() < 0.35 else 0.0 for _ in range(2))
    street = _Street((left, left + road_width), sidewalk, verge, far=rng.uniform(50, 160))
    return camera, street


def _draw_sky(canvas: _Canvas, camera: _Camera, rng: np.random.Generator) -> np.ndarray:
    """Fill everything with a sky gradient (clear, overcast or hazy) and clouds.

    Returns the horizon colour [3], which later tints distant surfaces (aerial haze).
    """
    kind = rng.integers(3)
    top = _jitter(rng, [[70, 120, 190], [170, 175, 182], [120, 140, 170]][kind], 15)
    bottom = _jitter(rng, [[175, 205, 235], [215, 216, 218], [225, 205, 175]][kind], 10)
    rows = slice(0, min(int(camera.horizon) + 2, canvas.height))  # the ground covers the rest
    t = np.clip(canvas.ys[rows] / max(camera.horizon, 1.0), 0, 1)[:, None, None]  # [h, 1, 1]
    sky = top * (1 - t) + bottom * t
    clouds = np.clip(canvas.tex_lo[rows] * rng.uniform(0.5, 1.5) - 0.2, 0, 1)[..., None]
    canvas.rgb[rows] = sky + (235 - sky) * clouds * rng.uniform(0.3, 0.9)
    canvas.labels[:] = SKY
    return bottom


def _draw_ground(
    canvas: _Canvas, camera: _Camera, street: _Street, rng: np.random.Generator
) -> None:
    """Road, kerbs, sidewalks and terrain below the horizon, from ground-plane coordinates."""
    r0 = max(int(np.floor(camera.horizon + 0.5)) + 1, 0)
    if r0 >= canvas.height:
        return
    z = camera.focal * camera.height / (canvas.ys[r0:, None] - camera.horizon)  # [h, 1]
    x = (canvas.xs[None, :] - camera.vanish_x) * z / camera.focal  # [h, W]
    (left, right), (walk_l, walk_r) = street.road, street.sidewalk
    labels = np.full(x.shape, TERRAIN, np.uint8)
    labels[(x > left - walk_l) & (x < right + walk_r)] = SIDEWALK
    road = (x >= left) & (x <= right)
    labels[road] = ROAD
    lut = np.zeros((256, 3), np.float32)
    lut[ROAD] = _jitter(rng, [rng.uniform(65, 125)] * 3, 4)
    paving = [[1.0, 1.0, 1.0], [1.15, 1.0, 0.95]][rng.integers(2)]  # grey or reddish
    lut[SIDEWALK] = _jitter(rng, rng.uniform(110, 175) * np.array(paving))
    lut[TERRAIN] = _jitter(rng, [[118, 128, 72], [140, 130, 92], [96, 120, 60]][rng.integers(3)])
    rgb = lut[labels] * (1 + 0.12 * canvas.tex_lo[r0:, :, None])
    grass = labels == TERRAIN
    rgb[grass] *= 1 + 0.25 * canvas.tex_hi[r0:][grass][:, None]
    _paint_markings(rgb, x, z, road, street, rng)
    near = z < 25  # paving joints alias into noise further away
    tiles = (np.mod(x, 0.7) < 0.06) | (np.mod(z, 0.7) < 0.06)
    rgb[(labels == SIDEWALK) & tiles & near] *= 0.8
    kerb = (labels == SIDEWALK) & ((np.abs(x - left) < 0.18) | (np.abs(x - right) < 0.18))
    rgb[kerb] = np.minimum(rgb[kerb] * 1.25, 255)
    _paint_ground_shadow(rgb, x, z, street, rng)
    canvas.rgb[r0:] = rgb
    canvas.labels[r0:] = labels


def _paint_markings(rgb, x, z, road, street: _Street, rng: np.random.Generator) -> None:
    """Lane lines, edge lines and sometimes a zebra crossing; all of it is still road."""
    left, right = street.road
    lanes = max(1, round((right - left) / 3.2))
    paint = _jitter(rng, [225, 225, 218], 8)
    dashes = np.mod(z + rng.uniform(0, 9), 9.0) < 4.0
    for k in range(1, lanes):
        line = road & (np.abs(x - (left + k * (right - left) / lanes)) < 0.08)
        rgb[line & dashes] = paint * rng.uniform(0.8, 1.0)
    if rng.random() < 0.6:
        edges = road & ((np.abs(x - left - 0.3) < 0.07) | (np.abs(x - right + 0.3) < 0.07))
        rgb[edges] = paint * 0.9
    if rng.random() < 0.3:
        start = rng.uniform(8, 25)
        zebra = road & (z > start) & (z < start + 3.5) & (np.mod(x, 1.1) < 0.55)
        rgb[zebra] = paint
    patches = road & (np.abs(np.sin(x * 0.7) * np.cos(z * 0.21)) > 0.93)  # asphalt repairs
    rgb[patches] *= rng.uniform(0.75, 0.95)


def _paint_ground_shadow(rgb, x, z, street: _Street, rng: np.random.Generator) -> None:
    """The sun-side buildings shade a band of ground whose width wobbles with depth."""
    if rng.random() < 0.3:
        return
    wobble = 1 + 0.5 * np.sin(z * rng.uniform(0.05, 0.2) + rng.uniform(0, 6))  # [h, 1]
    reach = rng.uniform(2, 10) * wobble
    left, right = street.facades
    shadow = x < left + reach if rng.random() < 0.5 else x > right - reach
    rgb[shadow] *= rng.uniform(0.45, 0.7)


# ---------------------------------------------------------------------------- facades


@dataclass(frozen=True)
class _Facade:
    """Segments along one side of the street, from depth ``bounds[i]`` to ``bounds[i+1]``.

    Each has a lower part (``low_label`` up to ``low_h`` metres) and an upper part
    (``high_label`` up to ``high_h``): a fence with trees behind, a wall with a building
    behind, or one building (both parts the same). Arrays are [n] or [n, 3].
    """

    bounds: np.ndarray
    low_label: np.ndarray
    low_h: np.ndarray
    low_colour: np.ndarray
    high_label: np.ndarray
    high_h: np.ndarray
    high_colour: np.ndarray
    floor_h: np.ndarray  # window grid of buildings, metres
    spacing: np.ndarray
    glass: np.ndarray


def _plan_facade(rng: np.random.Generator, far: float) -> _Facade:
    """Random segments up to ``far``: mostly buildings, some walls, fences, trees, gaps."""
    rows, z = [], 0.0
    while z < far:
        kind = rng.choice(6, p=[0.55, 0.12, 0.12, 0.08, 0.05, 0.08])
        building = (BUILDING, rng.uniform(6, 30), _jitter(rng, rng.choice(_BUILDING_COLOURS)))
        trees = (VEGETATION, rng.uniform(3, 10), _jitter(rng, [70, 100, 45], 15))
        metal_or_wood = [[90, 90, 88], [110, 85, 60], [60, 80, 62]][rng.integers(3)]
        fence = (FENCE, rng.uniform(1, 2), _jitter(rng, metal_or_wood))
        wall = (WALL, rng.uniform(1.2, 3.5), _jitter(rng, [150, 148, 138], 18))
        low, high = [
            (building, building),
            (trees, trees),
            (fence, trees),
            (wall, wall),
            (wall, building),
            ((TERRAIN, 0.0, np.zeros(3)), (TERRAIN, 0.0, np.zeros(3))),  # open lot
        ][kind]
        length = rng.uniform(8, 30) if kind in (0, 4) else rng.uniform(3, 15)
        rows.append((z, *low, *high, rng.uniform(2.8, 3.6), rng.uniform(1.8, 4.0)))
        z += length
    cols = list(zip(*rows, strict=True))
    return _Facade(
        bounds=np.array([*cols[0], np.inf], np.float32),
        low_label=np.array(cols[1], np.uint8),
        low_h=np.array(cols[2], np.float32),
        low_colour=np.array(cols[3], np.float32),
        high_label=np.array(cols[4], np.uint8),
        high_h=np.maximum(np.array(cols[5], np.float32), np.array(cols[2], np.float32)),
        high_colour=np.array(cols[6], np.float32),
        floor_h=np.array(cols[7], np.float32),
        spacing=np.array(cols[8], np.float32),
        glass=rng.uniform(0.25, 0.6, (len(rows), 8, 8)).astype(np.float32),
    )


def _draw_facade(
    canvas: _Canvas, camera: _Camera, facade: _Facade, side_x: float, far: float, haze, light
) -> None:
    """Paint one side's facades: the vertical plane ``x = side_x`` from depth 0 to ``far``.

    Works on the flat list of covered pixels [N] rather than on the whole [H, W] image.
    """
    split = int(camera.vanish_x)
    first, stop = (0, split) if side_x < 0 else (split + 1, canvas.width)
    z = camera.focal * side_x / (canvas.xs[first:stop] - camera.vanish_x)  # depth per column
    seg = np.clip(np.searchsorted(facade.bounds, z, side="right") - 1, 0, len(facade.low_h) - 1)
    trees = facade.high_label[seg] == VEGETATION
    top = facade.high_h[seg] + trees * 1.5 * canvas.tex_lo[0, first:stop]  # ragged tree line
    ys = canvas.ys[:, None]
    inside = (ys >= camera.row(top, z)) & (ys < camera.row(0, z)) & ((z > 0) & (z < far))
    rows, cc = np.nonzero(inside)
    cols, z, seg = cc + first, z[cc], seg[cc]  # per covered pixel [N]
    y = camera.height - (canvas.ys[rows] - camera.horizon) * z / camera.focal
    low = y < facade.low_h[seg]
    labels = np.where(low, facade.low_label[seg], facade.high_label[seg])
    rgb = np.where(low[:, None], facade.low_colour[seg], facade.high_colour[seg])  # [N, 3]
    rgb *= (1 + 0.1 * canvas.tex_lo[rows, cols])[:, None]
    _facade_texture(rgb, labels, y, z, seg, facade, canvas.tex_hi[rows, cols])
    fog = np.clip(z / (2.5 * far), 0, 0.45)[:, None]  # aerial haze grows with depth
    canvas.rgb[rows, cols] = rgb * light * (1 - fog) + haze * fog
    canvas.labels[rows, cols] = labels


def _frac(values: np.ndarray) -> np.ndarray:
    return values - np.floor(values)


def _facade_texture(rgb, labels, y, z, seg, facade: _Facade, grain) -> None:
    """Windows on buildings, bars on fences, courses on walls, leaves on vegetation ([N])."""
    building = labels == BUILDING
    floor, bay = y / facade.floor_h[seg], z / facade.spacing[seg]
    in_floor, in_bay = _frac(floor), _frac(bay)
    window = building & (in_floor > 0.3) & (in_floor < 0.8) & (in_bay > 0.25) & (in_bay < 0.75)
    window &= y > 1.0
    shop = building & ~window & (y < 3.0) & (_frac(bay * 0.5) < 0.6)  # shop fronts
    pick = (seg[window], floor[window].astype(np.int64) % 8, bay[window].astype(np.int64) % 8)
    glass = np.array([91, 110, 136], np.float32)
    rgb[window] = glass * (0.6 + facade.glass[pick])[:, None]
    gain = np.where(shop, np.float32(0.55), np.float32(1.0))
    fence_bars = (labels == FENCE) & ((_frac(z * 4) < 0.35) | (_frac(y) < 0.08))
    gain[fence_bars] = 0.6
    gain[(labels == WALL) & (_frac(y / 0.3) < 0.13)] = 0.8
    leaves = labels == VEGETATION
    gain[leaves] = 1 + 0.35 * grain[leaves]
    rgb *= gain[:, None]


def _draw_far_buildings(
    canvas: _Canvas, camera: _Camera, street: _Street, rng: np.random.Generator, haze
) -> None:
    """The frontal row of hazy buildings and trees that closes the street at ``far``."""
    z = street.far
    edges = np.cumsum(np.r_[street.facades[0] - 40, rng.uniform(5, 25, 12)])  # blocks
    heights = rng.uniform(4, 35, len(edges)).astype(np.float32)
    kinds = np.where(rng.random(len(edges)) < 0.25, VEGETATION, BUILDING).astype(np.uint8)
    colours = np.array([_jitter(rng, c) for c in rng.choice(_BUILDING_COLOURS, len(edges))])
    colours[kinds == VEGETATION] = [70, 95, 50]
    box = canvas.window(camera.row(heights.max(), z), camera.row(0, z), 0, canvas.width)
    if box is None:
        return
    (rows, _), ys, xs = box
    x = (xs[0] - camera.vanish_x) * z / camera.focal  # [W]
    block = np.clip(np.searchsorted(edges, x) - 1, 0, len(edges) - 1)
    y = camera.height - (ys - camera.horizon) * z / camera.focal  # [h, 1]
    r, c = np.nonzero((y >= 0) & (y < heights[block]) & (x > edges[0]))  # covered [N]
    r += rows.start
    rgb = colours[block[c]] * (1 + 0.12 * canvas.tex_hi[r, c, None])
    canvas.rgb[r, c] = rgb * 0.55 + haze * 0.45
    canvas.labels[r, c] = kinds[block[c]]


# ---------------------------------------------------------------------------- objects


@dataclass(frozen=True)
class _Vehicle:
    label: int
    width: tuple[float, float]
    height: tuple[float, float]
    length: float
    body: float  # fraction of the height below the cabin (1: a box, no cabin)
    inset: float  # cabin narrowing on each side, metres


_VEHICLES = {
    "car": _Vehicle(CAR, (1.65, 1.95), (1.38, 1.62), 4.6, 0.55, 0.14),
    "van": _Vehicle(CAR, (1.85, 2.05), (1.85, 2.2), 5.2, 0.62, 0.05),
    "bus": _Vehicle(BUS, (2.45, 2.6), (3.0, 3.4), 12.0, 1.0, 0.0),
    "truck": _Vehicle(TRUCK, (2.4, 2.55), (3.1, 3.8), 8.0, 1.0, 0.0),
}


def _draw_vehicle(canvas, camera, rng, x: float, z: float, kind: str) -> None:
    """A box-shaped vehicle: the flank facing the camera (if any), then the rear face."""
    spec = _VEHICLES[kind]
    width, height = rng.uniform(*spec.width), rng.uniform(*spec.height)
    frame = camera.frame(x, z)
    colour = _jitter(rng, rng.choice(_VEHICLE_COLOURS), 8)
    glass = _jitter(rng, [38, 44, 52], 8)
    canvas.shade(canvas.rect(*frame.rect(-0.05, 0.1, -width / 2, width / 2)), 0.45)
    obj = canvas.new_object(spec.label)
    flank = x - width / 2 if x - width / 2 > 0.2 else x + width / 2 if x + width / 2 < -0.2 else 0
    if flank:
        _draw_vehicle_side(canvas, camera, flank, z, height, spec, colour, glass, obj)
    half, body, inset = width / 2, height * spec.body, spec.inset
    outline = [(-half, 0.25), (-half, body), (-half + inset, height), (half - inset, height)]
    outline += [(half, body), (half, 0.25)]
    canvas.paint(_polygon(canvas, frame, outline), spec.label, colour, obj, texture=0.08)
    if width * frame.scale < 8:  # details would be under a pixel
        return
    if spec.body < 1:  # rear window
        pane = [(-half + inset + 0.1, body + 0.06), (-half + inset + 0.14, height - 0.07)]
        pane += [(half - inset - 0.14, height - 0.07), (half - inset - 0.1, body + 0.06)]
        canvas.paint(_polygon(canvas, frame, pane), spec.label, glass, obj)
    else:  # bus rear window, or the panel of a truck's box
        panel = canvas.rect(*frame.rect(height * 0.55, height * 0.88, 0.15 - half, half - 0.15))
        canvas.paint(panel, spec.label, glass if spec.label == BUS else colour * 0.8, obj)
    for sign in (-1, 1):
        lamp = frame.rect(body * 0.72, body * 0.9, sign * (half - 0.05), sign * (half - 0.3))
        canvas.paint(canvas.rect(*lamp), spec.label, [200, 30, 30], obj)
        wheel = frame.rect(0.0, 0.4, sign * (half - 0.05), sign * (half - 0.32))
        canvas.paint(canvas.rect(*wheel), spec.label, [22, 22, 24], obj)
    plate = canvas.rect(*frame.rect(0.4, 0.52, -0.25, 0.25))
    canvas.paint(plate, spec.label, [215, 215, 205], obj)


def _polygon(canvas: _Canvas, frame: _Frame, outline):
    """Polygon mask of ``(dx, y)`` points in metres on ``frame``."""
    return canvas.polygon([(frame.col(dx), frame.row(y)) for dx, y in outline])


def _draw_vehicle_side(canvas, camera, side_x, z, height, spec: _Vehicle, colour, glass, obj):
    """The vehicle's flank in the plane ``x = side_x``, from its rear (``z``) to its front."""
    length, body = spec.length, height * spec.body
    if spec.body < 1:  # boot, cabin, bonnet
        profile = [(0, 0.25), (0, body), (0.25, body), (0.32, height), (0.68, height)]
        profile += [(0.8, body), (1, body), (1, 0.25)]
        pane = [(0.33, body + 0.08), (0.36, height - 0.08), (0.66, height - 0.08)]
        pane += [(0.76, body + 0.08)]
    else:
        profile = [(0, 0.25), (0, height), (1, height), (1, 0.25)]
        pane = [(0.04, height * 0.55), (0.04, height * 0.85), (0.96, height * 0.85)]
        pane += [(0.96, height * 0.55)]

    def project(points):
        return canvas.polygon(
            [(camera.col(side_x, z + d * length), camera.row(y, z + d * length)) for d, y in points]
        )

    canvas.paint(project(profile), spec.label, colour * 0.78, obj, texture=0.08)
    canvas.paint(project(pane), spec.label, glass * 0.9, obj)
    radius = 0.33 if spec.body < 1 else 0.5
    for d in (0.17, 0.83):
        zc = z + d * length
        rx = abs(camera.col(side_x, zc - radius) - camera.col(side_x, zc + radius)) / 2
        wheel = canvas.ellipse(
            camera.row(radius, zc), camera.col(side_x, zc), camera.focal * radius / zc, rx
        )
        canvas.paint(wheel, spec.label, [24, 24, 26], obj)


def _draw_person(canvas, camera, rng, x: float, z: float, label: int = PERSON, base=0.0):
    """A pedestrian (or, with ``label=RIDER`` and ``base`` at pedal height, a cyclist)."""
    frame = camera.frame(x, z)
    s = rng.uniform(1.55, 1.95) / 1.75 * (0.85 if label == RIDER else 1.0)
    obj = canvas.new_object(label)
    skin = _jitter(rng, rng.choice(_SKIN), 6)
    shirt, trousers = _jitter(rng, rng.choice(_CLOTHES)), _jitter(rng, rng.choice(_CLOTHES))
    stride = rng.uniform(0.0, 0.2) * s
    hip = base + 0.88 * s
    for sign in (-1, 1):
        hx, fx = sign * 0.09 * s, sign * stride
        leg = [(hx - 0.075 * s, hip), (hx + 0.075 * s, hip), (fx + 0.06 * s, base)]
        leg += [(fx - 0.06 * s, base)]
        canvas.paint(_polygon(canvas, frame, leg), label, trousers, obj)
        arm = frame.rect(hip - 0.1 * s, hip + 0.55 * s, sign * 0.19 * s, sign * 0.27 * s)
        canvas.paint(canvas.rect(*arm), label, shirt * 0.85, obj)
    hem = hip - (0.3 * s if rng.random() < 0.3 else 0.0)  # coats reach below the hip
    torso = [(-0.2 * s, hip + 0.57 * s), (0.2 * s, hip + 0.57 * s), (0.17 * s, hem)]
    torso += [(-0.17 * s, hem)]
    canvas.paint(_polygon(canvas, frame, torso), label, shirt, obj, texture=0.1)
    head_y, head_r = hip + 0.72 * s, 0.115 * s
    head = canvas.ellipse(
        frame.row(head_y), frame.col(0), head_r * frame.scale, 0.8 * head_r * frame.scale
    )
    canvas.paint(head, label, skin, obj)
    hair = canvas.ellipse(
        frame.row(head_y + 0.05 * s), frame.col(0), 0.08 * s * frame.scale, 0.1 * s * frame.scale
    )
    canvas.paint(hair, label, _jitter(rng, [40, 30, 25], 20), obj)
    if rng.random() < 0.3:  # a bag
        bag = frame.rect(hip - 0.25 * s, hip + 0.05 * s, 0.22 * s, 0.4 * s)
        canvas.paint(canvas.rect(*bag), label, _jitter(rng, rng.choice(_CLOTHES)), obj)


def _draw_bicycle(canvas, camera, rng, x: float, z: float, side_view: bool = True) -> None:
    """A bicycle seen from the side (two rings and a frame) or from behind (a thin bar)."""
    frame = camera.frame(x, z)
    obj = canvas.new_object(BICYCLE)
    paint = _jitter(rng, rng.choice(_VEHICLE_COLOURS), 10)
    tyre = np.array([28, 28, 30], np.float32)
    if not side_view:
        canvas.paint(canvas.rect(*frame.rect(0.0, 0.68, -0.03, 0.03)), BICYCLE, tyre, obj)
        canvas.paint(canvas.rect(*frame.rect(0.95, 1.0, -0.28, 0.28)), BICYCLE, paint, obj)
        canvas.paint(canvas.rect(*frame.rect(0.3, 0.95, -0.04, 0.04)), BICYCLE, paint, obj)
        return
    radius = 0.34 * frame.scale
    for dx in (-0.55, 0.55):
        ring = canvas.ellipse(frame.row(0.34), frame.col(dx), radius, radius, hole=0.8)
        canvas.paint(ring, BICYCLE, tyre, obj)
    width = max(1, round(0.05 * frame.scale))
    joints = {"rear": (-0.55, 0.34), "seat": (-0.2, 0.9), "crank": (0.0, 0.3)}
    joints |= {"head": (0.45, 0.95), "front": (0.55, 0.34), "bar": (0.38, 1.08)}
    for path in (("rear", "seat", "crank", "rear"), ("seat", "head", "crank"), ("head", "front")):
        points = [(frame.col(joints[j][0]), frame.row(joints[j][1])) for j in path]
        canvas.paint(canvas.polygon(points, line_width=width), BICYCLE, paint, obj)
    bar = [(frame.col(dx), frame.row(y)) for dx, y in (joints["head"], joints["bar"])]
    canvas.paint(canvas.polygon(bar, line_width=width), BICYCLE, paint * 0.6, obj)


def _draw_rider(canvas, camera, rng, x: float, z: float) -> None:
    """A bicycle with its rider, two instances; the rider occludes the bicycle."""
    side_view = bool(rng.random() < 0.5)
    _draw_bicycle(canvas, camera, rng, x, z, side_view)
    _draw_person(canvas, camera, rng, x - 0.1 * side_view, z - 0.05, label=RIDER, base=0.3)


def _draw_pole(canvas, camera, rng, x: float, z: float) -> None:
    """A thin pole, sometimes with a lamp arm, a traffic sign and/or a traffic light."""
    frame = camera.frame(x, z)
    toward = -1.0 if x > 0 else 1.0  # towards the road
    height, half = rng.uniform(3.5, 9.0), rng.uniform(0.05, 0.12)
    grey = _jitter(rng, [[125, 125, 122], [150, 150, 148], [60, 75, 65]][rng.integers(3)], 10)
    canvas.paint(canvas.rect(*frame.rect(0, height, -half, half)), POLE, grey, texture=0.1)
    if height > 6 and rng.random() < 0.5:  # street lamp: arm and head are pole too
        arm = frame.rect(height - 0.12, height, 0, toward * 1.6)
        canvas.paint(canvas.rect(*arm), POLE, grey)
        head = frame.rect(height - 0.3, height, toward * 1.3, toward * 1.8)
        canvas.paint(canvas.rect(*head), POLE, grey * 0.8)
    attach = rng.random()
    if attach < 0.55:
        _draw_sign(canvas, frame, rng, rng.uniform(2.0, 3.2))
    if 0.4 < attach < 0.75 and height > 3.8:
        y = rng.uniform(2.4, min(height - 1.0, 4.5))
        _draw_traffic_light(canvas, frame, rng, y, toward, half)


def _draw_sign(canvas, frame: _Frame, rng, y: float) -> None:
    """A sign facing the camera: blue square, red-rimmed disc or triangle, or a name plate."""
    size = rng.uniform(0.55, 0.85)
    shape = rng.integers(4)
    white = _jitter(rng, [225, 225, 220], 8)
    red, blue = _jitter(rng, [190, 30, 35], 10), _jitter(rng, [30, 70, 160], 10)
    if shape == 0:
        canvas.paint(canvas.rect(*frame.rect(y, y + size, -size / 2, size / 2)), TRAFFIC_SIGN, blue)
        inner = frame.rect(y + size * 0.3, y + size * 0.7, -size / 5, size / 5)
        canvas.paint(canvas.rect(*inner), TRAFFIC_SIGN, white)
    elif shape == 1:
        cy, cx, r = frame.row(y + size / 2), frame.col(0), size / 2 * frame.scale
        canvas.paint(canvas.ellipse(cy, cx, r, r), TRAFFIC_SIGN, red)
        canvas.paint(canvas.ellipse(cy, cx, 0.72 * r, 0.72 * r), TRAFFIC_SIGN, white)
    elif shape == 2:
        for scale, colour in ((1.0, red), (0.6, white)):
            h, w = size * scale, size * scale / 2
            base = y + size * (1 - scale) / 3
            triangle = [(-w, base), (w, base), (0, base + h)]
            canvas.paint(_polygon(canvas, frame, triangle), TRAFFIC_SIGN, colour)
    else:
        plate = frame.rect(y + 0.4, y + 0.7, -size * 0.8, size * 0.8)
        canvas.paint(canvas.rect(*plate), TRAFFIC_SIGN, _jitter(rng, [200, 180, 60], 25))


def _draw_traffic_light(canvas, frame: _Frame, rng, y: float, toward: float, half: float) -> None:
    """A dark housing beside the pole with three lamps, one lit."""
    box = frame.rect(y, y + 0.9, toward * half, toward * (half + 0.32))
    body = _jitter(rng, [[35, 38, 36], [55, 60, 50], [150, 130, 45]][rng.integers(3)], 6)
    canvas.paint(canvas.rect(*box), TRAFFIC_LIGHT, body)
    lit = rng.integers(3)
    bright = ([235, 40, 30], [240, 180, 20], [40, 220, 120])
    cx = frame.col(toward * (half + 0.16))
    for k, dy in enumerate((0.75, 0.45, 0.15)):
        colour = bright[k] if k == lit else [60, 60, 58]
        r = 0.09 * frame.scale
        canvas.paint(canvas.ellipse(frame.row(y + dy), cx, r, r), TRAFFIC_LIGHT, colour)


def _draw_tree(canvas, camera, rng, x: float, z: float) -> None:
    """Trunk and a crown of overlapping ellipses (all vegetation, as in Cityscapes)."""
    frame = camera.frame(x, z)
    trunk_h, half = rng.uniform(1.8, 3.5), rng.uniform(0.1, 0.2)
    bark = _jitter(rng, [85, 72, 58], 10)
    canvas.paint(canvas.rect(*frame.rect(0, trunk_h + 0.5, -half, half)), VEGETATION, bark)
    green = _jitter(rng, [[60, 95, 40], [82, 112, 52], [45, 75, 35]][rng.integers(3)], 10)
    for _ in range(rng.integers(3, 7)):
        cy, cx = trunk_h + rng.uniform(0.8, 2.6), rng.normal(0, 0.7)
        radius = rng.uniform(1.0, 2.2) * frame.scale
        blob = canvas.ellipse(frame.row(cy), frame.col(cx), radius, radius * rng.uniform(0.8, 1.2))
        if blob is not None:
            slices, _ = blob
            leaves = green * (1 + 0.35 * canvas.tex_hi[slices][..., None])
            canvas.paint(blob, VEGETATION, leaves * rng.uniform(0.85, 1.1))


def _draw_ego_vehicle(canvas: _Canvas, rng: np.random.Generator, haze) -> None:
    """In some images, the bonnet of the recording car curves across the bottom rows."""
    if rng.random() > 0.45:
        return
    height, width = canvas.height, canvas.width
    depth = height * rng.uniform(0.06, 0.15)
    centre = width * rng.uniform(0.4, 0.6)
    hood = depth * (1 - 0.45 * ((canvas.xs - centre) / (width / 2)) ** 2)  # [W]
    rows = slice(int(height - depth) - 1, height)
    ys = canvas.ys[rows, None]
    mask = ys > height - hood[None]
    gloss = np.clip(1 - (ys - (height - hood[None])) / depth, 0, 1)[..., None]  # sky reflection
    paint = _jitter(rng, rng.choice(_VEHICLE_COLOURS), 6)
    rgb = paint * (1 - 0.5 * gloss) + haze * 0.5 * gloss
    canvas.rgb[rows][mask] = rgb[mask]
    canvas.labels[rows][mask] = EGO
    canvas.objects[rows][mask] = 0


# ---------------------------------------------------------------------------- planning


def _plan_vehicles(rng: np.random.Generator, street: _Street) -> list[tuple[float, float, str]]:
    """(depth, x, kind) of parked rows along the kerbs and traffic in the lanes between."""
    (left, right), plans = street.road, []
    lo, hi = left, right
    for side, kerb in ((-1, left), (1, right)):
        if right - left > 7.5 and rng.random() < 0.55:
            z, x = rng.uniform(3, 12), kerb - side * 1.15
            while z < min(street.far - 6, 50):  # tightly parked: near cars hide far ones
                if rng.random() < 0.85:
                    kind = "van" if rng.random() < 0.15 else "car"
                    plans.append((z, x + rng.normal(0, 0.1), kind))
                z += 5.2 + rng.uniform(0.4, 3.0)
            lo, hi = (kerb + 2.3, hi) if side < 0 else (lo, kerb - 2.3)
    lanes = max(1, int((hi - lo) / 3.0))
    kinds = ["car"] * 10 + ["van", "van", "bus", "truck"]
    for k in range(lanes):
        centre = lo + (k + 0.5) * (hi - lo) / lanes
        if rng.random() < 0.25:
            continue
        z = rng.uniform(6.0 if abs(centre) > 1.8 else 9.0, 25.0)
        while z < min(street.far - 12, 75):
            kind = kinds[rng.integers(len(kinds))]
            plans.append((z, centre + rng.normal(0, 0.25), kind))
            z += _VEHICLES[kind].length + rng.exponential(12) + 1.5
    return plans


def _plan_roadside(rng: np.random.Generator, street: _Street) -> list[tuple[float, float, str]]:
    """(depth, x, kind) of poles, trees, pedestrians, parked bicycles and riders."""
    (left, right), plans = street.road, []
    for side, kerb, walk, verge in zip((-1, 1), street.road, street.sidewalk, street.verge):
        z = rng.uniform(3, 15)
        while z < min(street.far, 90):
            plans.append((z, kerb + side * 0.45, "pole"))
            z += rng.uniform(7, 28)
        if rng.random() < 0.5:
            x = kerb + side * (walk + verge / 2 if verge else walk - 0.7)
            z = rng.uniform(4, 15)
            while z < min(street.far, 80):
                plans.append((z, x, "tree"))
                z += rng.uniform(6, 15)
        for _ in range(rng.poisson(3.0)):
            z, x = rng.uniform(3.5, 40), kerb + side * rng.uniform(0.5, max(walk - 0.4, 0.6))
            plans.append((z, x, "person"))
            if rng.random() < 0.35:  # walking in company: overlapping pedestrians
                plans.append((z + rng.uniform(0.2, 1.0), x + rng.normal(0, 0.5), "person"))
        if rng.random() < 0.2:
            plans.append((rng.uniform(5, 25), kerb + side * 0.9, "bicycle"))
    if rng.random() < 0.35:
        plans.append((rng.uniform(6, 30), [left + 0.9, right - 0.9][rng.integers(2)], "rider"))
    return plans


# kind -> function(canvas, camera, rng, x, z)
_DRAW = {kind: partial(_draw_vehicle, kind=kind) for kind in _VEHICLES} | {
    "person": _draw_person,
    "bicycle": _draw_bicycle,
    "rider": _draw_rider,
    "pole": _draw_pole,
    "tree": _draw_tree,
}


def _finish_image(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-image exposure, contrast and colour cast, slight lens blur, sensor noise -> uint8."""
    mean = rgb[::4, ::4].reshape(-1, 3).mean(axis=0)  # a subsample is plenty for a mean
    gain = rng.uniform(0.65, 1.25) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    contrast = rng.uniform(0.75, 1.2)
    rgb = rgb * (contrast * gain) + mean * (1 - contrast) * gain
    rgb = _soften(_soften(rgb, rng.uniform(0, 0.25), axis=0), rng.uniform(0, 0.25), axis=1)
    noise = rng.random(rgb.shape, dtype=np.float32) - 0.5  # uniform: far cheaper than normal
    rgb += noise * rng.uniform(6, 24)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def _soften(rgb: np.ndarray, weight: float, axis: int) -> np.ndarray:
    """Blur [H, W, 3] along ``axis`` with the kernel [w, 1 - 2w, w] (edges repeat)."""
    weight = np.float32(weight)
    out = rgb * (1 - 2 * weight)
    lo, hi, first, last = [[slice(None)] * 2 for _ in range(4)]
    lo[axis], hi[axis], first[axis], last[axis] = slice(None, -1), slice(1, None), 0, -1
    lo, hi, first, last = tuple(lo), tuple(hi), tuple(first), tuple(last)
    out[hi] += weight * rgb[lo]
    out[lo] += weight * rgb[hi]
    out[first] += weight * rgb[first]
    out[last] += weight * rgb[last]
    return out


def render_scene(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One street scene: image uint8 [H, W, 3], labelIds uint8 [H, W], instanceIds int32 [H, W].

    Everything random comes from ``rng``, so a seeded generator gives the same scene anywhere.
    """
    canvas = _Canvas(height, width, rng)
    camera, street = _sample_layout(rng, height, width)
    haze = _draw_sky(canvas, camera, rng)
    _draw_ground(canvas, camera, street, rng)
    _draw_far_buildings(canvas, camera, street, rng, haze)
    for side_x in street.facades:  # the sun lights one side more than the other
        facade = _plan_facade(rng, street.far)
        _draw_facade(canvas, camera, facade, side_x, street.far, haze, rng.uniform(0.6, 1.15))
    plans = _plan_vehicles(rng, street) + _plan_roadside(rng, street)
    for z, x, kind in sorted(plans, reverse=True):  # painter's order: far to near
        _DRAW[kind](canvas, camera, rng, x, z)
    _draw_ego_vehicle(canvas, rng, haze)
    return _finish_image(canvas.rgb, rng), canvas.labels, canvas.instances()
