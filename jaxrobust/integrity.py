"""Content hashes of array trees and files: what a checkpoint, a posterior stack or a data cache
records when it is written, and what a reader checks before trusting it.

:func:`tree_digest` makes one pass over the host bytes of every leaf (path, dtype, shape and
bytes, in sorted path order, into one BLAKE2b-256 hash) and in the same pass records which float
leaves hold NaN or infinity. :func:`check_digest` compares the digest of a restored tree with the
recorded one. Layer 0: imports numpy and jax only.

Examples:
    >>> import numpy as np
    >>> tree = {"params": {"w": np.arange(6.0, dtype=np.float32).reshape(2, 3)}}
    >>> digest = tree_digest(tree)
    >>> digest["finite"], digest["leaves"], digest["bytes"], len(digest["hash"])
    (True, 1, 24, 64)
    >>> check_digest(tree, digest)  # the same content: no problem
    >>> tree["params"]["w"][0, 0] = 1e-7  # one changed value
    >>> check_digest(tree, digest)
    'content hash differs from the one recorded when it was written'
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any
ALGORITHM = "blake2b-256"
MAX_LISTED = 5  # non-finite leaves named in a digest


def leaf_path(path: tuple) -> str:
    """``"params/dense/kernel"`` for a jax key path; dict keys, indices and attribute names alike
    (a NamedTuple's ``.mu`` and a dict's ``["mu"]`` give the same name).

    Examples:
        >>> [leaf_path(p) for p, _ in jax.tree_util.tree_leaves_with_path({"a": [1, {"b": 2}]})]
        ['a/0', 'a/1/b']
    """
    parts = []
    for key in path:
        for attr in ("key", "idx", "name"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def host_array(leaf: Any) -> np.ndarray:
    """``leaf`` as a C-contiguous numpy array on the host (PRNG key arrays as their key data).

    Examples:
        >>> host_array(jnp.ones((2, 2))).flags.c_contiguous
        True
        >>> host_array(jax.random.key(0)).dtype
        dtype('uint32')
    """
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        from jaxrobust.distributed import host_value  # shards held by other processes

        leaf = host_value(leaf)
    return np.ascontiguousarray(np.asarray(leaf))


def tree_digest(tree: PyTree) -> dict[str, Any]:
    """The JSON-serialisable digest of ``tree``: ``{"algorithm", "hash", "finite", "nonfinite",
    "leaves", "bytes"}``, made in one pass over the host bytes.

    ``finite`` is False when a float leaf holds NaN or infinity; ``nonfinite`` names the first
    such leaves (at most five).

    Examples:
        >>> digest = tree_digest({"b": np.array([1.0, np.nan]), "a": np.arange(3)})
        >>> digest["finite"], digest["nonfinite"], digest["leaves"]
        (False, ['b'], 2)
        >>> tree_digest({"a": np.arange(3), "b": np.array([1.0, np.nan])})["hash"] == digest["hash"]
        True
        >>> tree_digest({})["leaves"]
        0
    """
    hasher = hashlib.blake2b(digest_size=32)
    leaves = sorted(
        ((leaf_path(p), leaf) for p, leaf in jax.tree_util.tree_leaves_with_path(tree)),
        key=lambda item: item[0],
    )
    nonfinite, total = [], 0
    for path, leaf in leaves:
        array = host_array(leaf)
        hasher.update(f"{path}\0{array.dtype.str}\0{array.shape}\0".encode())
        data = array.reshape(-1).view(np.uint8)
        hasher.update(data)
        total += data.size
        if jnp.issubdtype(array.dtype, jnp.inexact) and not np.isfinite(array).all():
            nonfinite.append(path)
    return {
        "algorithm": ALGORITHM,
        "hash": hasher.hexdigest(),
        "finite": not nonfinite,
        "nonfinite": nonfinite[:MAX_LISTED],
        "leaves": len(leaves),
        "bytes": total,
    }


def check_digest(tree: PyTree, recorded: dict[str, Any] | None) -> str | None:
    """``None`` if ``tree`` matches the ``recorded`` digest, else what differs (one phrase).

    A tree without a recorded digest (``None``: written before digests existed) is only checked
    for non-finite values.

    Examples:
        >>> tree = {"w": np.zeros(3, np.float32)}
        >>> recorded = tree_digest(tree)
        >>> check_digest({"w": np.zeros(4, np.float32)}, recorded)
        'content hash differs from the one recorded when it was written'
        >>> check_digest({"w": np.array([np.inf])}, None)
        'non-finite values in w'
        >>> check_digest(tree, {"algorithm": "md5", "hash": "00"})
        "unknown hash algorithm 'md5'"
    """
    digest = tree_digest(tree)
    if recorded is None:
        if not digest["finite"]:
            return f"non-finite values in {', '.join(digest['nonfinite'])}"
        return None
    if recorded.get("algorithm") != ALGORITHM:
        return f"unknown hash algorithm {recorded.get('algorithm')!r}"
    if digest["hash"] != recorded.get("hash"):
        return "content hash differs from the one recorded when it was written"
    return None


def file_hash(path: str | os.PathLike, chunk_size: int = 1 << 22) -> str:
    """BLAKE2b-256 hex digest of a file's bytes, read in chunks.

    Examples:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as f:
        ...     _ = f.write(b"abc"); f.flush()
        ...     file_hash(f.name) == hashlib.blake2b(b"abc", digest_size=32).hexdigest()
        True
    """
    hasher = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            hasher.update(chunk)
    return hasher.hexdigest()


def bytes_hash(data: bytes | memoryview) -> str:
    """BLAKE2b-256 hex digest of ``data`` (what :func:`file_hash` gives for a file holding it).

    Examples:
        >>> bytes_hash(b"abc") == hashlib.blake2b(b"abc", digest_size=32).hexdigest()
        True
    """
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def short_error(err: BaseException) -> str:
    """``"Type: first line"`` of an error, without TensorStore's long spec tail (for messages
    about a damaged file).

    Examples:
        >>> short_error(ValueError("Truncated [tensorstore_spec='...']" + chr(10) + "more"))
        'ValueError: Truncated'
    """
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else ""
    for noise in (" See full TensorStore details", " [tensorstore_spec="):
        text = text.split(noise)[0]
    return f"{type(err).__name__}: {text[:300]}"
