"""The coalition-sampling seed of a step: the one formula every trainer and adapter uses."""

from __future__ import annotations

SEED_BITS = 63  # fits an int64 seed as well as a uint64 one


def step_seed(run_seed: int, step: int, rank: int = 0, world_size: int = 1) -> int:
    """A distinct seed for each (step, rank) of a run, reproducible from ``run_seed``.

    ``step * world_size + rank`` numbers every (step, rank) pair once; the large odd
    multiplier keeps runs with nearby seeds apart. The native sampler mixes the seed
    with splitmix64, so consecutive seeds draw unrelated coalitions.
    """
    for name, value in (("run_seed", run_seed), ("step", step), ("rank", rank), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if rank >= max(world_size, 1):
        raise ValueError(f"rank must be < world_size ({world_size}), got {rank}")
    return (run_seed * 1_000_003 + step * world_size + rank) % (1 << SEED_BITS)
