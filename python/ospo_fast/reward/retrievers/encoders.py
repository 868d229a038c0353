"""Sentence encoders: texts -> L2-normalised float32 embeddings.

Every encoder here tokenises once, sorts the texts by token length, encodes them in
batches padded only to the longest text of each batch, and restores the input order.
Without the sort, a short product query batched with a long catalog text pays for
the long one's padding.

Token batches come as numpy arrays (``encode_token_ids``: numpy out) or as torch
tensors (``encode_token_tensors``: a tensor out on the inputs' device). A torch model
on a GPU keeps tensors there end to end; the other encoders copy through the host.
The loaders are in :mod:`ospo_fast.reward.retrievers.factory`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from ospo_fast.ops.packing import encodable_texts

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

EncoderBackend = Literal["torch", "onnx"]


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

    def encode_token_tensors(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:  # float32 [Q, dim] on the inputs' device
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


def check_token_tensors(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
    """:func:`check_token_ids` for tensors (one host sync, for the empty-row check)."""
    for arg, tensor in (("input_ids", input_ids), ("attention_mask", attention_mask)):
        if tensor.dim() != 2:
            raise ValueError(f"{arg} must be 2-d [Q, L], got shape {tuple(tensor.shape)}")
        if tensor.is_floating_point() or tensor.is_complex():
            raise TypeError(f"{arg} must hold integers, got dtype {tensor.dtype}")
    if input_ids.shape != attention_mask.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} must equal input_ids shape {tuple(input_ids.shape)}"
        )
    if input_ids.shape[1] == 0:
        raise ValueError("input_ids must have at least one column (L >= 1)")
    if input_ids.shape[0] and not bool((attention_mask != 0).any(dim=1).all()):
        raise ValueError("attention_mask has rows that attend to no token")


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
    encode_batch: Callable[[Any, Any], Any],
    *,
    dim: int,
    batch_size: int,
    show_progress: bool,
    device: torch.device | None = None,
) -> Any:
    """Tokenise, encode in token-length order with minimal padding, return in input order.

    ``device`` None: numpy batches into ``encode_batch``, float32 numpy ``[n, d]`` out.
    A torch device: tensor batches there, a float32 tensor ``[n, d]`` there.
    """
    items = check_texts(texts)
    batch_size = check_batch_size(batch_size)
    if device is None:
        out: Any = np.empty((len(items), dim), dtype=np.float32)  # [n, d]
    else:
        import torch

        out = torch.empty((len(items), dim), dtype=torch.float32, device=device)  # [n, d]
    if not items:
        return out
    token_rows = tokenizer(encodable_texts(items), truncation=True, max_length=max_length)["input_ids"]
    lengths = np.fromiter((len(r) for r in token_rows), dtype=np.int64, count=len(items))
    # Longest first: the peak memory of the run shows up in the first batch.
    order = np.argsort(-lengths, kind="stable")  # [n]
    starts = range(0, len(items), batch_size)
    for start in tqdm(starts, desc="encode", unit="batch", disable=not show_progress):
        rows = order[start : start + batch_size]
        input_ids, attention_mask = pad_token_ids([token_rows[i] for i in rows], tokenizer.pad_token_id)
        if device is None:
            out[rows] = encode_batch(input_ids, attention_mask)
        else:
            index = torch.from_numpy(rows).to(device)
            out[index] = encode_batch(torch.from_numpy(input_ids).to(device), torch.from_numpy(attention_mask).to(device))
    return out


class LengthSortedEncoding:
    """``encode`` for encoders that embed token ids: tokenise, batch by length, restore order.

    ``encode_token_tensors`` here runs ``encode_token_ids`` through the host; an encoder
    that can stay on a device overrides it.
    """

    tokenizer: Any
    max_length: int
    dim: int
    encode_token_ids: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def encode_token_tensors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Embed a padded token batch of tensors: float32 ``[Q, dim]`` on the inputs' device."""
        import torch

        out = self.encode_token_ids(input_ids.cpu().numpy(), attention_mask.cpu().numpy())
        return torch.from_numpy(out).to(input_ids.device)

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False, device: Any = None
    ) -> Any:
        """Embed texts: float32 ``[n, dim]``, unit rows, in input order.

        numpy by default; a float32 tensor on ``device`` when one is given.
        """
        if device is None:
            return encode_length_sorted(
                texts, self.tokenizer, self.max_length, self.encode_token_ids, dim=self.dim,
                batch_size=batch_size, show_progress=show_progress,
            )
        import torch

        return encode_length_sorted(
            texts, self.tokenizer, self.max_length, self.encode_token_tensors, dim=self.dim,
            batch_size=batch_size, show_progress=show_progress, device=torch.device(device),
        )


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

    def encode_token_tensors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Embed a padded token batch of tensors on the model's device: float32 ``[Q, dim]``
        on the inputs' device, with no host copy when the two devices are one."""
        import torch

        check_token_tensors(input_ids, attention_mask)
        if input_ids.shape[0] == 0:
            return torch.empty((0, self.dim), dtype=torch.float32, device=input_ids.device)
        features = {
            "input_ids": input_ids.to(device=self.model.device, dtype=torch.int64),
            "attention_mask": attention_mask.to(device=self.model.device, dtype=torch.int64),
        }
        with torch.inference_mode():
            pooled = self.model(features)["sentence_embedding"].float()  # [Q, dim]
        unit = pooled / pooled.norm(dim=1, keepdim=True).clamp(min=1e-12)
        return unit.to(input_ids.device)
