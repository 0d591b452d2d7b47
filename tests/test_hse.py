"""The HSE MobileNet in PyTorch (read from its TensorFlow.js graph) against TensorFlow.js."""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from facecloak.align import similarity_transform, warp_faces_from_pixels
from facecloak.detect import FaceDetector
from facecloak.models import get
from facecloak.models._packages import ModelFileMissing
from facecloak.models.hse import load_hse, model_file
from facecloak.models.tfjs_graph import read_tfjs_graph
from PIL import Image

TFJS = Path(__file__).parent / "tfjs"


def _skip_loudly(message: str) -> None:
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)


@pytest.fixture(scope="module")
def model_path() -> Path:
    try:
        return model_file()
    except ModelFileMissing as exc:
        _skip_loudly(f"SKIPPED: {exc} (needs npm; CI installs it)")


@pytest.fixture(scope="module")
def hse(model_path) -> torch.nn.Module:
    return load_hse(model_path)


def _aligned_chips(lfw_root: Path, people: int, photos: int) -> tuple[torch.Tensor, list[int]]:
    """Each person's first photos, aligned on YuNet's landmarks with the registered template."""
    spec, detector = get("hse"), FaceDetector()
    chosen = sorted(p for p in lfw_root.iterdir() if p.is_dir())[:people]
    chips, owners = [], []
    for index, person in enumerate(chosen):
        for photo in sorted(person.glob("*.jpg"))[:photos]:
            pixels = np.asarray(Image.open(photo).convert("RGB")).copy()
            face = max(detector.detect(pixels).faces, key=lambda f: f.size)
            matrix = similarity_transform(
                torch.as_tensor(np.array(face.landmarks))[None],
                torch.as_tensor(spec.template_array()),
            )
            chips.append(
                warp_faces_from_pixels(pixels, matrix, spec.input_size, torch.device("cpu"))[0]
            )
            owners.append(index)
    return torch.stack(chips), owners


def test_matches_tensorflow_js_on_real_faces(hse, model_path, lfw_root, tmp_path):
    """The model's own runtime, TensorFlow.js, computes the same features from the same chips."""
    node = shutil.which("node")
    if node is None or not (TFJS / "node_modules" / "@tensorflow" / "tfjs-core").is_dir():
        _skip_loudly(
            "SKIPPED: node or TensorFlow.js missing (scripts/test.sh installs tests/tfjs with npm)"
        )
    chips, _ = _aligned_chips(lfw_root, 3, 1)
    bgr = chips.flip(1) * 255.0 - hse.bgr_mean
    (tmp_path / "in.f32").write_bytes(bgr.permute(0, 2, 3, 1).numpy().astype("<f4").tobytes())
    subprocess.run(
        [node, str(TFJS / "embed_faceres.js"), str(model_path.parent), str(tmp_path / "in.f32"),
         str(len(chips)), str(tmp_path / "out.f32")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    theirs = np.fromfile(tmp_path / "out.f32", "<f4").reshape(len(chips), -1)
    with torch.no_grad():
        ours = hse(chips).numpy()
    assert ours.shape == theirs.shape == (3, 1024)
    theirs = theirs / np.linalg.norm(theirs, axis=1, keepdims=True)
    assert np.abs(ours - theirs).max() <= 1e-5


def test_tells_people_apart_at_its_threshold(hse, lfw_root):
    spec = get("hse")
    chips, owners = _aligned_chips(lfw_root, 6, 2)
    with torch.no_grad():
        vectors = hse(chips)
    same = spec.same_person(vectors[:, None], vectors[None]).numpy()
    owner = np.asarray(owners)
    same_person = (owner[:, None] == owner[None]) & ~np.eye(len(owners), dtype=bool)
    other_people = owner[:, None] != owner[None]
    assert same[same_person].mean() >= 0.8
    assert same[other_people].mean() <= 0.2
    assert torch.allclose(vectors.norm(dim=1), torch.ones(len(owners)), atol=1e-5)


def test_input_gradient_is_finite_and_nonzero(hse, lfw_root):
    chips, _ = _aligned_chips(lfw_root, 1, 1)
    chips.requires_grad_()
    hse(chips)[0, 0].backward()
    assert torch.isfinite(chips.grad).all() and chips.grad.abs().sum() > 0


def test_only_the_identity_branch_is_built(hse):
    """The age and gender heads of the graph are never computed."""
    names = [name for name, _, _ in hse.graph.program]
    assert names[-1] == "global_pooling/Mean"
    assert not any(name.startswith(("age_pred", "gender_pred", "feats")) for name in names)
    assert len(hse.graph.convs) == 27  # conv1 + 13 depthwise + 13 pointwise
    # Batch-norm arithmetic folded into the convolutions, each ReLU6 (Relu, Minimum, Maximum)
    # one clamp, and the pooling: nothing else runs.
    assert len(names) == 27 + 27 + 1


def _copy_model(model_path: Path, folder: Path) -> Path:
    for name in ("faceres.json", "faceres.bin"):
        shutil.copy(model_path.parent / name, folder / name)
    return folder / "faceres.json"


def test_truncated_weights_are_a_clear_error(model_path, tmp_path):
    copy = _copy_model(model_path, tmp_path)
    weights = tmp_path / "faceres.bin"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(ValueError, match=r"truncated TensorFlow\.js weights"):
        read_tfjs_graph(copy)


def test_a_weight_file_outside_the_model_folder_is_refused(model_path, tmp_path):
    copy = _copy_model(model_path, tmp_path)
    model = json.loads(copy.read_text())
    model["weightsManifest"][0]["paths"] = ["../../etc/passwd"]
    copy.write_text(json.dumps(model))
    with pytest.raises(ValueError, match="outside the model's folder"):
        read_tfjs_graph(copy)


def test_a_missing_or_malformed_weight_file_is_a_clear_error(model_path, tmp_path):
    copy = _copy_model(model_path, tmp_path)
    (tmp_path / "faceres.bin").unlink()
    with pytest.raises(ValueError, match=r"cannot read its weight file faceres\.bin"):
        read_tfjs_graph(copy)
    copy = _copy_model(model_path, tmp_path)
    model = json.loads(copy.read_text())
    del model["weightsManifest"][0]["weights"][0]["shape"]
    copy.write_text(json.dumps(model))
    with pytest.raises(ValueError, match="malformed weights manifest"):
        read_tfjs_graph(copy)


@pytest.mark.parametrize("text", ["", "{", '{"modelTopology": 3}', "[]"])
def test_not_a_graph_model_is_a_clear_error(tmp_path, text):
    path = tmp_path / "model.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"not a TensorFlow\.js graph model"):
        read_tfjs_graph(path)


def test_a_missing_model_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("FACECLOAK_NPM_MODELS", str(tmp_path))
    with pytest.raises(ModelFileMissing, match=r"scripts/fetch-npm-models\.sh"):
        model_file()
