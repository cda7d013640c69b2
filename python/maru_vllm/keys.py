"""Chunking and key scheme of the Maru vLLM connector.

A prompt is cut into chunks of ``chunk_tokens`` tokens (a multiple of vLLM's
``block_size``); only full chunks are stored. Chunk ``i`` is named by a hash chain over
the token ids::

    h[-1] = blake2b(b"maru-vllm-v1\\0" + namespace, digest_size=16)
    h[i]  = blake2b(h[i-1] + int64_le(tokens[i*C:(i+1)*C]), digest_size=16)

so ``h[i]`` identifies the whole prefix up to the end of chunk ``i`` (two prompts share
chunk ``i`` exactly when they share all tokens up to it), and each hash costs one pass
over one chunk's tokens (O(n) per prompt, not O(n^2)).

The Maru key of chunk ``i`` as stored by tensor-parallel rank ``r`` of ``n``::

    vllm.<model>.<cfg>.tp<r>of<n>.<h[i] hex>

* ``<model>``: the model name, ``/`` replaced by ``--``, cut to 80 characters;
* ``<cfg>``: 8 hex digits of a hash of everything that changes the bytes of a chunk and
  that both the scheduler and the worker know: model name, KV cache dtype, block size,
  chunk tokens, pipeline rank/size, and the user's ``maru_namespace``;
* one chunk file holds the chunk's KV for *all* the worker's attention layers (the
  layer group), layer after layer, each layer's segment ``cache.index_select(block_dim,
  chunk_block_ids)``; a reader checks the file's length against its own layout.

Keys stay under 255 bytes and contain no ``/``.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence

from .tensors import LITTLE

_SEED = b"maru-vllm-v1\0"


def chunk_hashes(token_ids: Sequence[int], chunk_tokens: int, namespace: str = "", start: int = 0) -> list[bytes]:
    """The hash chain of the full chunks of ``token_ids`` (16 bytes each)."""
    h = hashlib.blake2b(_SEED + namespace.encode(), digest_size=16).digest()
    out = []
    n = len(token_ids) // chunk_tokens
    for i in range(n):
        a = array("q", token_ids[i * chunk_tokens : (i + 1) * chunk_tokens])
        if not LITTLE:
            a.byteswap()
        h = hashlib.blake2b(h + a.tobytes(), digest_size=16).digest()
        out.append(h)
    return out[start:]


def model_tag(model: str) -> str:
    return (model or "model").replace("/", "--")[:80]


def config_tag(model: str, dtype: str, block_size: int, chunk_tokens: int, pp: str, namespace: str) -> str:
    text = f"{model}|{dtype}|{block_size}|{chunk_tokens}|{pp}|{namespace}"
    return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()


class KeyScheme:
    """Builds Maru keys of chunks for one model configuration."""

    def __init__(
        self,
        model: str,
        dtype: str,
        block_size: int,
        chunk_tokens: int,
        tp_size: int,
        pp: str = "pp0of1",
        namespace: str = "",
    ):
        if chunk_tokens <= 0 or chunk_tokens % block_size:
            raise ValueError(f"chunk_tokens {chunk_tokens} must be a positive multiple of block_size {block_size}")
        self.chunk_tokens = chunk_tokens
        self.block_size = block_size
        self.tp_size = tp_size
        self.namespace = namespace
        self._prefix = f"vllm.{model_tag(model)}.{config_tag(model, dtype, block_size, chunk_tokens, pp, namespace)}"

    def hashes(self, token_ids: Sequence[int]) -> list[bytes]:
        return chunk_hashes(token_ids, self.chunk_tokens, self.namespace)

    def key(self, h: bytes, tp_rank: int) -> str:
        return f"{self._prefix}.tp{tp_rank}of{self.tp_size}.{h.hex()}"

    def keys(self, hashes: Sequence[bytes], tp_rank: int) -> list[str]:
        return [self.key(h, tp_rank) for h in hashes]
