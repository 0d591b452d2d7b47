"""Alignment: the similarity fit and kornia's crop agree with OpenCV on real photos."""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from facecloak.align import similarity_transform, warp_faces
from facecloak.models import get
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
