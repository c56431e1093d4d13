"""The only place random generators are made.

Every random draw in robbench comes from an explicit :class:`torch.Generator` whose seed is derived
from the suite seed and a tuple of names (cell, sample id, purpose, draw index) by a stable hash.
Nothing uses the global RNG, nothing uses the clock. Because each *sample* has its own stream
(:class:`SampleRNG`), a sample's draws do not depend on which batch it lands in or where.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any tuple of printable parts, stable across processes and platforms."""
    h = hashlib.blake2b(repr(tuple(str(p) for p in parts)).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little") & 0x7FFF_FFFF_FFFF_FFFF


def generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh generator on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


class SampleRNG:
    """Independent random streams, one per sample of a batch.

    Draws are made on the CPU (so a seed gives the same numbers on every device) and moved to
    ``device``. ``SampleRNG.fixed`` re-creates the generators from their seeds at every draw call
    sequence start: see :meth:`reset`. Defenses receive one of these (or ``None`` when they must be
    deterministic) and take all their randomness from it.
    """

    def __init__(self, seeds: Sequence[int], device: str | torch.device = "cpu") -> None:
        self.seeds = [int(s) for s in seeds]
        self.device = torch.device(device)
        self._gens = [generator(s) for s in self.seeds]

    def __len__(self) -> int:
        return len(self.seeds)

    @classmethod
    def for_samples(cls, sample_ids: Iterable[object], *parts: object, device: str | torch.device = "cpu") -> SampleRNG:
        return cls([derive_seed(*parts, sid) for sid in sample_ids], device=device)

    def reset(self) -> None:
        """Rewind every stream to its seed (the same draws again: attacker-known randomness)."""
        self._gens = [generator(s) for s in self.seeds]

    def select(self, index: Sequence[int] | Tensor) -> SampleRNG:
        """The streams of a subset of samples (shares the generators, so draws continue)."""
        idx = index.tolist() if isinstance(index, Tensor) else list(index)
        out = SampleRNG.__new__(SampleRNG)
        out.seeds = [self.seeds[i] for i in idx]
        out.device = self.device
        out._gens = [self._gens[i] for i in idx]
        return out

    def repeat(self, k: int, tag: object = "draw") -> SampleRNG:
        """``k`` independent streams per sample, laid out draw-major (k blocks of B) for EoT."""
        seeds = [derive_seed(s, tag, j) for j in range(k) for s in self.seeds]
        return SampleRNG(seeds, device=self.device)

    def _stack(self, fn) -> Tensor:  # type: ignore[no-untyped-def]
        out = torch.stack([fn(g) for g in self._gens])
        if self.device.type == "cuda":
            # pinned staging + asynchronous copy: drawing inside a purifier's loop does not stall the
            # host on the GPU (a pageable copy would), so the CPU draws the next noise while the GPU works
            return out.pin_memory().to(self.device, non_blocking=True)
        return out.to(self.device)

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """Standard normal draws of shape (B, *shape)."""
        return self._stack(lambda g: torch.randn(shape, generator=g, dtype=dtype))

    def rand(self, *shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """Uniform [0, 1) draws of shape (B, *shape)."""
        return self._stack(lambda g: torch.rand(shape, generator=g, dtype=dtype))

    def randint(self, high: int, *shape: int) -> Tensor:
        """Integer draws in [0, high) of shape (B, *shape)."""
        return self._stack(lambda g: torch.randint(high, shape, generator=g))

    def randn_like(self, x: Tensor) -> Tensor:
        return self.randn(*x.shape[1:], dtype=x.dtype).to(x.device)
