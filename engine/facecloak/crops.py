"""A region's cloaked pixels handed out as separate crops, whose gradients are summed in place.

Autograd gives every reader of a slice of a tensor a gradient the size of the whole tensor:
zero-filled, scattered into, and added to the others. A 24-megapixel face's region holds over a
megapixel, and each step has a dozen readers (every chip of every photo version, every SSIM
tile), so most of a step's memory traffic was zeros. Here each crop is a leaf of its own: a
reader's gradient is the size of what it read, and :meth:`CroppedRegion.gradient` adds each into
place once.
"""

from __future__ import annotations

import torch

Window = tuple[int, int, int, int]  # top, bottom, left, right


class CroppedRegion:
    """One step's cloaked pixels of a region (``1 x 3 x h x w``), read crop by crop."""

    def __init__(self, pixels: torch.Tensor) -> None:
        self.pixels = pixels.detach()
        self.shape: tuple[int, int] = (pixels.shape[-2], pixels.shape[-1])
        self._crops: list[tuple[Window, torch.Tensor]] = []

    def crop(self, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
        """The pixels ``[top:bottom, left:right]`` as a leaf whose gradient this region keeps."""
        leaf = self.pixels[..., top:bottom, left:right].detach().requires_grad_()
        self._crops.append(((top, bottom, left, right), leaf))
        return leaf

    def gradient(self) -> torch.Tensor:
        """The loss's gradient with respect to the region's pixels: every crop's, in place."""
        # Contiguous whatever the pixels' layout: the smoothing and Adam that follow run up to
        # twice as fast on it as on a channels-last one.
        total = torch.zeros(self.pixels.shape, dtype=self.pixels.dtype, device=self.pixels.device)
        for (top, bottom, left, right), leaf in self._crops:
            if leaf.grad is not None:
                total[..., top:bottom, left:right] += leaf.grad
        return total
