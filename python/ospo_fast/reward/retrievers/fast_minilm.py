"""A mean-pooling sentence-transformers model (all-MiniLM-L6-v2) on onnxruntime.

The transformer is exported once with torch.onnx.export into the cache directory and
reused; the pooling and normalisation run in numpy. The numerics match the torch
encoder to 1e-5, and onnxruntime is the faster of the two on CPU. The export needs the
`onnx` package (torch's exporter imports it).

The exported file is keyed by a sha256 of the model's config and weights, so a model
changed in place is exported again rather than served stale, and its name ends with a
sha256 of its own bytes, checked on every load: a truncated or bit-flipped export (which
onnxruntime may load without complaint, and embed wrongly) is exported again, with a
RuntimeWarning naming the file.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from pathlib import Path

import numpy as np

from ospo_fast.reward.retrievers.cache import default_cache_dir, write_atomic
from ospo_fast.reward.retrievers.encoders import SentenceTransformerEncoder
from ospo_fast.reward.retrievers.onnx_encoder import OnnxEncoder

TOKEN_OUTPUT = "token_embeddings"
OPSET = 17
# An exported graph must reproduce torch this closely on a padded probe batch, else it is rejected.
EXPORT_TOLERANCE = 1e-4
# Hex digits of the export's own sha256 in its file name.
DIGEST_CHARS = 16


def check_onnx_exportable(encoder: SentenceTransformerEncoder) -> None:
    """The numpy side only knows mean pooling then optional normalisation."""
    modules = list(encoder.model)
    kinds = [type(m).__name__ for m in modules]
    mean_pooled = (
        len(kinds) >= 2
        and kinds[0] == "Transformer"
        and kinds[1] == "Pooling"
        and modules[1].pooling_mode in ("mean", ("mean",))
        and all(k == "Normalize" for k in kinds[2:])
    )
    if not mean_pooled:
        raise ValueError(
            f"backend='onnx' needs Transformer -> Pooling(mean) [-> Normalize]; {encoder.name!r} has {kinds}"
        )


def weights_sha256(encoder: SentenceTransformerEncoder) -> str:
    """Hash of the transformer's config and every tensor of its state dict."""
    auto_model = encoder.model[0].auto_model
    digest = hashlib.sha256(auto_model.config.to_json_string().encode())
    for key, tensor in sorted(auto_model.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{key}:{array.dtype}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def probe_batch(vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Two rows, the second padded: tracing it keeps the attention mask in the graph."""
    length, kept = 12, 7
    input_ids = (np.arange(2 * length, dtype=np.int64).reshape(2, length) * 97 + 1000) % vocab_size  # [2, L]
    attention_mask = np.ones((2, length), dtype=np.int64)  # [2, L]
    attention_mask[1, kept:] = 0
    input_ids[1, kept:] = 0
    return input_ids, attention_mask


def export_transformer(encoder: SentenceTransformerEncoder) -> bytes:
    """Export the transformer (ids, mask) -> token embeddings [Q, L, d], dynamic Q and L."""
    import torch

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self, auto_model: torch.nn.Module) -> None:
            super().__init__()
            self.auto_model = auto_model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.auto_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    auto_model = encoder.model[0].auto_model
    module = TokenEmbeddings(auto_model).eval()
    ids, mask = probe_batch(int(auto_model.config.vocab_size))
    dynamic = {0: "batch", 1: "length"}
    buffer = io.BytesIO()
    # The tracer warns about every shape-dependent Python branch in the model; they are
    # all on static config here, and check_export catches any that are not.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.from_numpy(ids), torch.from_numpy(mask)),
            buffer,
            input_names=["input_ids", "attention_mask"],
            output_names=[TOKEN_OUTPUT],
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, TOKEN_OUTPUT: dynamic},
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def check_export(torch_encoder: SentenceTransformerEncoder, onnx_encoder: OnnxEncoder) -> None:
    """Compare both backends on a batch of another shape than the traced one."""
    vocab = int(torch_encoder.model[0].auto_model.config.vocab_size)
    ids, mask = probe_batch(vocab)
    ids = np.concatenate([ids, ids[:, :5]], axis=1)[[1, 0, 1]]  # [3, 17]: new Q and L
    mask = np.concatenate([mask, mask[:, :5]], axis=1)[[1, 0, 1]]
    mask[2, 3:] = 0
    gap = np.abs(torch_encoder.encode_token_ids(ids, mask) - onnx_encoder.encode_token_ids(ids, mask)).max()
    if not gap <= EXPORT_TOLERANCE:
        raise RuntimeError(f"ONNX export of {torch_encoder.name!r} differs from torch by {gap:.2e}")


def onnx_from_sentence_transformer(
    encoder: SentenceTransformerEncoder, *, cache_dir: Path | None = None
) -> OnnxEncoder:
    """The same model on onnxruntime, exporting it on first use.

    A fresh export is checked against torch before it is written, so the cache only
    ever holds graphs that passed.
    """
    check_onnx_exportable(encoder)
    root = default_cache_dir() if cache_dir is None else Path(cache_dir)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder.name)[-48:]
    stem = f"{slug}-{weights_sha256(encoder)[:24]}"
    cached = verified_export(root / "onnx", stem)
    if cached is not None:
        return onnx_encoder_for(encoder, cached)
    model_bytes = export_transformer(encoder)
    onnx_encoder = onnx_encoder_for(encoder, model_bytes)
    check_export(encoder, onnx_encoder)
    digest = hashlib.sha256(model_bytes).hexdigest()[:DIGEST_CHARS]
    write_atomic(root / "onnx" / f"{stem}-{digest}.onnx", lambda handle: handle.write(model_bytes))
    return onnx_encoder


def verified_export(folder: Path, stem: str) -> bytes | None:
    """The bytes of the export ``<stem>-<digest>.onnx`` whose sha256 starts with its digest,
    or None. Any other export of ``stem`` is deleted with a warning naming it."""
    for path in sorted(folder.glob(f"{stem}-*.onnx")):
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest()[:DIGEST_CHARS] == path.stem.removeprefix(f"{stem}-"):
            return data
        warnings.warn(f"ONNX export {path} does not match the sha256 in its name (truncated or corrupted); "
                      "exporting again", RuntimeWarning, stacklevel=3)
        path.unlink(missing_ok=True)
    return None


def onnx_encoder_for(encoder: SentenceTransformerEncoder, onnx_model: Path | bytes) -> OnnxEncoder:
    return OnnxEncoder(
        onnx_model,
        encoder.tokenizer,
        name=encoder.name,
        max_length=encoder.max_length,
        output_name=TOKEN_OUTPUT,
        pooling="mean",
    )
