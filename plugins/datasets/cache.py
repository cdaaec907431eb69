"""A verified on-disk cache of decoded dataset tensors.

Decoding gzipped IDX files, unpickling CIFAR batches or voxelising 70,000
digits costs seconds; loading the result back costs a fraction of that. Each
entry is one ``torch.save`` file under ``<cache root>/datasets/<name>/`` named
by a hash of its *key*: a JSON-able description of what was read (source file
paths, sizes and modification times) and how it was processed (format
versions, seeds). A different ``--data-dir``, a replaced source file or a new
voxeliser version therefore never reuses a stale entry.

Guarantees:

- Writes are atomic (a temporary file in the same folder, then
  ``os.replace``), so a crash or a concurrent writer never leaves a
  half-written entry under the final name.
- Every tensor's SHA-256 (over dtype, shape and bytes) is stored beside it
  and checked on every read; the stored key must equal the requested one.
  A truncated, corrupt or mismatching entry is logged as a warning, deleted
  and rebuilt transparently.
- Entries are read with ``torch.load(weights_only=True)``: a cache file can
  hold tensors, strings and numbers, never code.
- A cache that cannot be written (read-only home, full disk) only costs the
  speed-up: the data is still returned, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pathlib
from typing import TYPE_CHECKING, Any, Callable, Mapping

from harness.cache import mark_used
from harness.specs import tensor_digest
from harness.text import squeeze
from harness_plugins.datasets.common import dataset_cache_dir

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

#: Bump when the layout of cache entries changes; old entries are then ignored.
CACHE_FORMAT = 1


def file_stamp(path: pathlib.Path) -> list[Any]:
    """What identifies a source file for cache keys: resolved path, size, mtime (ns)."""
    resolved = path.resolve()
    stat = resolved.stat()
    return [str(resolved), stat.st_size, stat.st_mtime_ns]


def _key_text(key: Mapping[str, Any]) -> str:
    return json.dumps({"cache_format": CACHE_FORMAT, **key}, sort_keys=True, separators=(",", ":"))


def entry_path(name: str, key: Mapping[str, Any]) -> pathlib.Path:
    """Where the entry for ``key`` of dataset ``name`` lives."""
    digest = hashlib.sha256(_key_text(key).encode()).hexdigest()[:24]
    return dataset_cache_dir(name) / f"{digest}.pt"


def _discard(path: pathlib.Path, reason: str) -> None:
    log.warning("dataset cache entry %s is unusable (%s); deleting it and rebuilding", path, reason)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not delete dataset cache entry %s: %s", path, exc)


def _read(path: pathlib.Path, key_text: str) -> dict[str, "torch.Tensor"] | None:
    """The verified tensors of the entry at ``path``, or ``None`` (after discarding it)."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except PermissionError as exc:  # held by another process (Windows: a worker replacing it, an antivirus scan):
        log.warning("dataset cache entry %s cannot be read now (%s); decoding the data again", path, exc)
        return None  # the entry is not damaged, and stays
    except Exception as exc:  # truncated zip, bad pickle, anything: the entry is unusable
        _discard(path, f"cannot be read: {type(exc).__name__}: {squeeze(exc, 200)}")
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("tensors"), dict):
        _discard(path, "unexpected layout")
        return None
    if payload.get("key") != key_text:
        _discard(path, "stored key does not match")
        return None
    tensors, digests = payload["tensors"], payload.get("sha256")
    if not isinstance(digests, dict) or set(digests) != set(tensors):
        _discard(path, "checksums missing")
        return None
    for tensor_name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor) or tensor_digest(tensor) != digests[tensor_name]:
            _discard(path, f"checksum mismatch in {tensor_name!r}")
            return None
    return tensors


def _write(path: pathlib.Path, key_text: str, tensors: Mapping[str, "torch.Tensor"]) -> bool:
    """Atomically store ``tensors`` at ``path``; ``False`` (with a warning) when that fails."""
    import torch

    payload = {
        "key": key_text,
        "tensors": {name: tensor.contiguous() for name, tensor in tensors.items()},
        "sha256": {name: tensor_digest(tensor) for name, tensor in tensors.items()},
    }
    from harness.results import atomic_write

    try:
        atomic_write(path, lambda handle: torch.save(payload, handle))
        return True
    except (OSError, RuntimeError) as exc:  # torch.save says a full disk as a RuntimeError ("unexpected pos")
        log.warning("could not write dataset cache entry %s (%s); continuing without the cache", path, exc)
        return False


def cached(
    name: str,
    key: Mapping[str, Any],
    build: Callable[[], Mapping[str, "torch.Tensor"]],
) -> tuple[dict[str, "torch.Tensor"], dict[str, Any]]:
    """The tensors for ``key``: from the cache when a valid entry exists, else ``build()`` and store.

    Returns ``(tensors, info)`` where ``info`` has ``cache`` (``"hit"``,
    ``"miss"`` or ``"unwritable"``) and ``cache_path``.
    """
    key_text = _key_text(key)
    path = entry_path(name, key)
    if path.is_file():
        tensors = _read(path, key_text)
        if tensors is not None:
            log.debug("dataset %s: cache hit %s", name, path)
            mark_used(path)  # for harness cache --clear --older-than
            return tensors, {"cache": "hit", "cache_path": str(path)}
    tensors = dict(build())
    written = _write(path, key_text, tensors)
    return tensors, {"cache": "miss" if written else "unwritable", "cache_path": str(path)}
