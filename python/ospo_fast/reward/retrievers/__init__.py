"""Retrievers for the OSPO reward: dense encoders (MiniLM on torch or onnxruntime), BM25,
a disk cache of corpus embeddings, and exact top-k search."""

from ospo_fast.reward.retrievers.bm25 import BM25Retriever
from ospo_fast.reward.retrievers.cache import catalog_sha256, cached_corpus_embeddings, default_cache_dir
from ospo_fast.reward.retrievers.encoders import Encoder, SentenceTransformerEncoder, TokenEncoder, l2_normalise
from ospo_fast.reward.retrievers.factory import build_retriever, load_encoder
from ospo_fast.reward.retrievers.index import DenseRetriever, ExactIndex, HnswIndex, Retriever
from ospo_fast.reward.retrievers.onnx_encoder import OnnxEncoder

__all__ = [
    "BM25Retriever",
    "DenseRetriever",
    "Encoder",
    "ExactIndex",
    "HnswIndex",
    "OnnxEncoder",
    "Retriever",
    "SentenceTransformerEncoder",
    "TokenEncoder",
    "build_retriever",
    "cached_corpus_embeddings",
    "catalog_sha256",
    "default_cache_dir",
    "l2_normalise",
    "load_encoder",
]
