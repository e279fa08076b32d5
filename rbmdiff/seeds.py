"""Seeds: how rbmdiff turns one integer seed into the seeds and random words it needs.

Every derived seed comes from NumPy's ``SeedSequence([seed, key])`` and every stream of raw
random words from NumPy's PCG64 seeded by ``SeedSequence(seed)``, so distinct (seed, key)
pairs give unrelated streams (O'Neill 2015; NumPy's parallel random generation guide).
"""

from __future__ import annotations

import numpy as np
import torch

SEED_BITS = 63  # seeds drawn from a torch generator lie in [0, 2^63 - 1)


def derive(seed: int, key: int, *, below: int = 2**64) -> int:
    """The seed of piece ``key`` of a run seeded ``seed``, in [0, below): ``seed`` itself for
    key 0 when it fits (one piece is the unpieced run), else 64 bits of
    ``SeedSequence([seed, key])`` reduced mod ``below``."""
    if key == 0 and 0 <= seed < below:
        return seed
    state = np.random.SeedSequence([seed, key]).generate_state(1, np.uint64)[0]
    return int(state) % below


SAMPLER_SEED_LIMIT = 2**31  # dimod samplers (dwave-samplers, the mocks) take 0 ≤ seed < 2^31


def sampler_seed(seed: int, k: int = 0) -> int:
    """The seed of the k-th dimod sampler call of a run seeded ``seed``: :func:`derive` below
    2^31."""
    return derive(seed, k, below=SAMPLER_SEED_LIMIT)


def generator(seed: int) -> np.random.Generator:
    """NumPy's PCG64 seeded by ``SeedSequence(seed)``: the stream named by ``seed``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))


def words(seed: int, count: int) -> np.ndarray:
    """The first ``count`` raw uint32 words of :func:`generator` (seed) (the first k words
    do not depend on ``count``)."""
    raw = generator(seed).bit_generator.random_raw(-(-count // 2))
    return raw.view(np.uint32)[:count].copy()


def from_generator(generator: torch.Generator | None) -> int:
    """One draw in [0, 2^63 - 1) from ``generator`` (torch's default generator when None),
    made on the generator's own device:
    the seed of a call's own stream, so the same generator state gives the same result."""
    device = generator.device if generator is not None else "cpu"
    return int(torch.randint(0, 2**SEED_BITS - 1, (), generator=generator, device=device))
