"""Write an OSPO product-search world and verl's train/test parquet files for it.

    python examples/verl/prepare_data.py --out ~/data/ospo

writes ``<out>/world`` (the catalog and queries the reward reads, ``ospo.world_dir``),
``<out>/train.parquet`` and ``<out>/test.parquet`` (``data.train_files``,
``data.val_files``). Each row's ``extra_info`` carries its candidate pool, which the
reward and the OSPO trainer read.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from ospo_fast.data import WorldConfig, generate_world, save_world
from ospo_fast.integrations.verl.dataset import verl_dataset_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for world/, train.parquet, test.parquet")
    parser.add_argument("--products", type=int, default=20_000, help="catalog size")
    parser.add_argument("--train", type=int, default=2_000, help="training queries")
    parser.add_argument("--test", type=int, default=200, help="held-out queries")
    parser.add_argument("--seed", type=int, default=0, help="world seed (equal seeds give equal worlds)")
    args = parser.parse_args()

    start = time.perf_counter()
    world = generate_world(WorldConfig(n_products=args.products, n_train=args.train, n_test=args.test, seed=args.seed))
    save_world(world, args.out / "world")
    for split in ("train", "test"):
        pd.DataFrame(verl_dataset_rows(world.rows(split), split)).to_parquet(args.out / f"{split}.parquet")
    print(f"wrote {args.out}/world, train.parquet ({args.train} rows), test.parquet ({args.test} rows) "
          f"in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
