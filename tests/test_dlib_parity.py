"""Parity of the native PyTorch dlib ResNet with dlib itself, on real LFW faces.

The reference is the ``dlib`` module (PyPI ``dlib-bin``), used by these tests only. Chips are cut
with dlib's own pipeline (frontal detector, 5-point shape predictor, ``get_face_chip``), then both
implementations embed the very same chip.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from facecloak.models import get
from facecloak.models._packages import ModelFileMissing
from facecloak.models.dlib_resnet import SPEC, default_weights_path, load_dlib_resnet
from PIL import Image

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FACES = DATA / "faces" / "lfw62"

# Same-person and different-person pairs: (identity, image index) on each side.
SAME = [
    (("George_W_Bush", 0), ("George_W_Bush", 1)),
    (("Colin_Powell", 0), ("Colin_Powell", 1)),
    (("Jennifer_Aniston", 0), ("Jennifer_Aniston", 2)),
]
DIFFERENT = [
    (("George_W_Bush", 0), ("Colin_Powell", 0)),
    (("Angelina_Jolie", 0), ("Jennifer_Aniston", 0)),
    (("George_W_Bush", 0), ("Jennifer_Aniston", 0)),
]


@pytest.fixture(scope="module")
def faces_dir() -> Path:
    if not FACES.is_dir():
        pytest.skip(
            f"!!! SHARED TEST DATA MISSING: {FACES} does not exist; the dlib parity tests "
            "need the real LFW face photos from the shared data folder !!!"
        )
    return FACES


@pytest.fixture(scope="module")
def dlib_ref():
    """dlib's detector, 5-point predictor and recogniser (the reference implementation)."""
    dlib = pytest.importorskip("dlib", reason="reference dlib (pip install dlib-bin) missing")
    models = default_weights_path().parent
    return (
        dlib,
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat")),
        dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat")),
    )


@pytest.fixture(scope="module")
def model():
    return load_dlib_resnet()


def _image(faces_dir: Path, person: str, index: int) -> np.ndarray:
    files = sorted((faces_dir / person).glob("*.jpg"))
    assert len(files) > index, f"missing test image {person} #{index}"
    return np.asarray(Image.open(files[index]).convert("RGB"))


def _chip(dlib_ref, img: np.ndarray) -> np.ndarray:
    """dlib's 150 px chip (padding 0.25), from the detector's box or a centred one."""
    dlib, detector, predictor, _ = dlib_ref
    boxes = detector(img, 1)
    if boxes:
        box = max(boxes, key=lambda b: b.area())
    else:
        h, w = img.shape[:2]
        box = dlib.rectangle(w // 4, h // 4, 3 * w // 4, 3 * h // 4)
    return dlib.get_face_chip(img, predictor(img, box), size=150, padding=0.25)


def _to_tensor(chips: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float() / 255.0


@pytest.fixture(scope="module")
def chips(faces_dir, dlib_ref) -> dict[tuple[str, int], np.ndarray]:
    """Chips of the first image of ten identities, plus every image used in the pairs."""
    people = sorted(p.name for p in faces_dir.iterdir() if p.is_dir())[:10]
    keys = {(p, 0) for p in people}
    for pair in SAME + DIFFERENT:
        keys.update(pair)
    return {k: _chip(dlib_ref, _image(faces_dir, *k)) for k in sorted(keys)}


def test_registered():
    assert get("dlib") is SPEC
    assert SPEC.input_size == 150 and SPEC.metric == "euclidean"
    assert SPEC.template_array().shape == (5, 2)


def test_parity_with_dlib(model, dlib_ref, chips):
    keys = sorted({k for k in chips if k[1] == 0})
    assert len({person for person, _ in keys}) >= 8
    batch = [chips[k] for k in keys]
    reference = np.array([np.asarray(dlib_ref[3].compute_face_descriptor(c)) for c in batch])
    with torch.no_grad():
        ours = model(_to_tensor(batch)).numpy()
    assert ours.shape == (len(batch), 128)
    diff = np.abs(ours - reference).max()
    assert diff <= 1e-4, f"max abs difference from dlib {diff:.2e}"


def test_same_and_different_people(model, chips):
    def distance(a, b) -> float:
        with torch.no_grad():
            e = model(_to_tensor([chips[a], chips[b]]))
        return float(SPEC.distance(e[:1], e[1:]))

    for a, b in SAME:
        assert distance(a, b) < SPEC.match_threshold, (a, b)
    for a, b in DIFFERENT:
        assert distance(a, b) > SPEC.match_threshold, (a, b)


def test_input_gradients(model, chips):
    x = _to_tensor([chips[SAME[0][0]], chips[DIFFERENT[0][1]]]).requires_grad_(True)
    target = torch.zeros(2, 128)
    loss = SPEC.distance(model(x), target).sum()
    loss.backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert (x.grad.abs().sum(dim=(1, 2, 3)) > 0).all()
    assert all(not p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("keep", [7, 400, 0.5, -37])
def test_truncated_file_raises_value_error(tmp_path, keep):
    source = default_weights_path()
    size = source.stat().st_size
    n = int(size * keep) if isinstance(keep, float) else keep % size
    target = tmp_path / "truncated.dat"
    with source.open("rb") as f:
        target.write_bytes(f.read(n))
    with pytest.raises(ValueError, match="truncated"):
        load_dlib_resnet(str(target))


def test_trailing_bytes_raise_value_error(tmp_path):
    target = tmp_path / "padded.dat"
    shutil.copyfile(default_weights_path(), target)
    with target.open("ab") as f:
        f.write(b"\x01\x00")
    with pytest.raises(ValueError, match="trailing"):
        load_dlib_resnet(str(target))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFileMissing, match="pip install"):
        load_dlib_resnet(str(tmp_path / "nope.dat"))
