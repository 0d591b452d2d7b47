"""Alignment: the similarity fit and kornia's crop agree with OpenCV on real photos."""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from facecloak.align import similarity_transform, warp_faces, warp_faces_from_pixels
from facecloak.models import get
from facecloak.pixels import to_unit
from PIL import Image

from tests.conftest import shared_data


def test_similarity_transform_recovers_a_known_transform():
    template = torch.as_tensor(get("sface").template_array())
    angle, scale, shift = math.radians(17), 2.7, torch.tensor([31.0, -12.5])
    rotation = scale * torch.tensor(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    )
    # Points in the photo such that photo -> template is the inverse of (rotation, shift).
    photo_points = (template - shift) @ torch.linalg.inv(rotation).T
    matrix = similarity_transform(photo_points[None], template)[0]
    assert torch.allclose(matrix[:, :2], rotation, atol=1e-4)
    assert torch.allclose(matrix[:, 2], shift, atol=1e-3)


def test_kornia_crop_matches_opencv_warp_affine_on_a_real_face():
    photo = np.asarray(Image.open(shared_data("photos", "skimage", "astronaut.png")).convert("RGB"))
    landmarks = torch.tensor([[[197.0, 110], [233, 108], [217, 132], [201, 152], [232, 151]]])
    matrix = similarity_transform(landmarks, torch.as_tensor(get("sface").template_array()))
    image = torch.from_numpy(photo.copy()).permute(2, 0, 1)[None].float() / 255
    ours = warp_faces(image, matrix, 112)[0].permute(1, 2, 0).numpy() * 255
    theirs = cv2.warpAffine(photo, matrix[0].numpy().astype(np.float64), (112, 112))
    # OpenCV rounds to integers; kornia keeps floats: they agree to rounding.
    assert np.abs(ours - theirs).max() <= 0.5 + 1e-3


def test_chips_from_crops_equal_chips_from_the_whole_photo():
    """Faces inside, across the border and at a corner, rotated and at several scales, for
    every stored pixel type: a chip read from a crop around its face is the same chip."""
    generator = np.random.default_rng(5)
    template = torch.as_tensor(get("dlib").template_array())
    landmarks = []
    for cx, cy, angle, scale in [(300, 200, 0.2, 3.0), (8, 150, -0.5, 1.5), (630, 470, 1.0, 0.8)]:
        rotation = np.array(
            [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
        )
        points = (template.numpy() - 75.0) @ rotation.T * scale + (cx, cy)
        landmarks.append(points.astype(np.float32))
    matrices = similarity_transform(torch.tensor(np.stack(landmarks)), template)
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535), (np.float32, 1.0)):
        photo = (generator.random((480, 640, 3)) * top).astype(dtype)
        whole = warp_faces(to_unit(photo), matrices, 150)
        cropped = warp_faces_from_pixels(photo, matrices, 150, torch.device("cpu"))
        assert whole.abs().sum() > 0
        # Up to float32 rounding of the moved translation (on noise, the worst case: 1e-4).
        torch.testing.assert_close(cropped, whole, atol=3e-4, rtol=0)
