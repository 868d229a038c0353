"""Product-search data: the synthetic world and loaders for the ESCI and H&M formats.

Every source yields a `World` (a catalog table and a queries table with the same columns),
so the trainer and the reward never need to know where the data came from.
"""

from ospo_fast.data.esci import load_esci
from ospo_fast.data.hm import load_hm
from ospo_fast.data.world import (
    World,
    WorldConfig,
    build_prompt,
    generate_world,
    headroom_report,
    load_world,
    pool_arrays,
    save_world,
)

__all__ = [
    "World",
    "WorldConfig",
    "build_prompt",
    "generate_world",
    "headroom_report",
    "load_esci",
    "load_hm",
    "load_world",
    "pool_arrays",
    "save_world",
]
