"""Maglev consistent hashing (Eisenbud et al., NSDI 2016, section 3.4), with weights.

Every L4 node builds the lookup table from the same (name, weight) list and must get the same
bytes, so nothing here depends on input order, process state or platform: offsets and skips come
from keyed BLAKE2b of the backend name, and backends are filled in UTF-8 byte order of their
names. The hot population loop is in the C extension ``_maglev``; ``reference_table`` is a slow
pure-Python twin used by the tests to cross-check it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

import shoal.dataplane._maglev as _maglev  # C extension, built by setup.py

__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_TABLE_SIZE",
    "MAX_TABLE_SIZE",
    "MAX_WEIGHT",
    "MIN_TABLE_SIZE",
    "MaglevError",
    "build_table",
    "is_prime",
    "permutation_params",
    "populate",
    "reference_populate",
    "reference_table",
    "shares",
    "slot_changes",
    "table_digest",
    "table_size_for",
]

DEFAULT_SEED: bytes = b"shoal-maglev-v1"
# 65537 is the paper's size: prime, and ~65 slots per backend at N=1000 keeps imbalance < 1%.
DEFAULT_TABLE_SIZE = 65537
MIN_TABLE_SIZE = 3
# Table size per VIP from its backend count: the smallest listed prime with at least 100 slots
# per backend (max/mean load <= 1.01 with equal weights, churn near the ideal 1/N), 65537 above
# 655 backends. 10,000 VIPs of 10 backends then take 40 MiB of tables instead of 2.6 GiB.
TABLE_SIZES: tuple[int, ...] = (251, 1021, 4093, 16381, 65537)
SLOTS_PER_BACKEND = 100
# 2**24 slots = 64 MiB of int32 in the BPF map; beyond that the table is a memory problem.
MAX_TABLE_SIZE = 2**24
# Weights are relative; 2**16 levels is finer than any operator needs and keeps the C turn
# arithmetic (round * weight, round < 2**24) far from overflowing 64 bits.
MAX_WEIGHT = 2**16
_MAX_SEED = 64  # BLAKE2b key limit

# Deterministic Miller-Rabin witnesses: correct for every n < 3.3e24, far above our sizes.
_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)

Backends = Sequence[tuple[str, int]]
Table = npt.NDArray[np.int32]


class MaglevError(ValueError):
    """Invalid Maglev input (table size, seed, backend name or weight)."""


def is_prime(n: int) -> bool:
    """Return whether ``n`` is prime (deterministic Miller-Rabin; exact for n < 3.3e24)."""
    if n < 2:
        return False
    for p in _MR_BASES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in _MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def table_size_for(backends: int) -> int:
    """The table size for a VIP with this many configured backends (healthy or not, so a
    health change never resizes, and so remaps, a table)."""
    for size in TABLE_SIZES:
        if size >= SLOTS_PER_BACKEND * backends:
            return size
    return TABLE_SIZES[-1]


def _as_int(value: object) -> int | None:
    """``value`` as an int if it is an integer, else None."""
    # bool is an int subclass, but True as a weight or size is almost certainly a bug.
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        return None
    return int(value)


def _check_size(size: object) -> int:
    m = _as_int(size)
    if m is None:
        raise MaglevError(f"table size must be an int, got {type(size).__name__}")
    if m < MIN_TABLE_SIZE:
        raise MaglevError(f"table size must be at least {MIN_TABLE_SIZE}, got {m}")
    if m > MAX_TABLE_SIZE:
        raise MaglevError(f"table size must be at most 2**24 ({MAX_TABLE_SIZE}), got {m}")
    if not is_prime(m):
        # A prime size makes every skip in [1, M-1] coprime to M, so each permutation is complete.
        raise MaglevError(f"table size must be prime, got {m}")
    return m


def _check_seed(seed: object) -> bytes:
    if not isinstance(seed, bytes | bytearray | memoryview):
        raise MaglevError(f"seed must be bytes, got {type(seed).__name__}")
    key = bytes(seed)
    if not 1 <= len(key) <= _MAX_SEED:
        raise MaglevError(f"seed must be 1 to {_MAX_SEED} bytes long, got {len(key)}")
    return key


def _check_weight(weight: object, what: str) -> int:
    w = _as_int(weight)
    if w is None:
        raise MaglevError(f"weight of {what} must be an int, got {type(weight).__name__}")
    if w < 0:
        raise MaglevError(f"weight of {what} must not be negative, got {w}")
    if w > MAX_WEIGHT:
        raise MaglevError(f"weight of {what} must be at most 2**16 ({MAX_WEIGHT}), got {w}")
    return w


def _encode_name(name: object) -> bytes:
    if not isinstance(name, str):
        raise MaglevError(f"backend name must be a str, got {type(name).__name__}")
    if not name:
        raise MaglevError("backend name must not be empty")
    try:
        return name.encode()
    except UnicodeEncodeError:
        raise MaglevError(f"backend name {name!r} is not encodable as UTF-8") from None


def _check_backends(backends: Backends) -> tuple[list[bytes], list[int]]:
    """Validate (name, weight) pairs; return encoded names and weights in input order."""
    names: list[bytes] = []
    weights: list[int] = []
    seen: set[bytes] = set()
    for entry in backends:
        if not isinstance(entry, tuple | list) or len(entry) != 2:
            raise MaglevError(f"each backend must be a (name, weight) pair, got {entry!r}")
        name, weight = entry
        raw = _encode_name(name)
        if raw in seen:
            raise MaglevError(f"duplicate backend name {name!r}")
        seen.add(raw)
        names.append(raw)
        weights.append(_check_weight(weight, f"backend {name!r}"))
    return names, weights


def _params(raw_name: bytes, m: int, key: bytes) -> tuple[int, int]:
    digest = hashlib.blake2b(raw_name, key=key, digest_size=16).digest()
    h1 = int.from_bytes(digest[:8], "little")
    h2 = int.from_bytes(digest[8:], "little")
    return h1 % m, h2 % (m - 1) + 1


def permutation_params(name: str, size: int, seed: bytes) -> tuple[int, int]:
    """Return (offset, skip) of ``name``'s preference list: slot j is (offset + j*skip) mod size.

    offset = h1 mod M and skip = h2 mod (M-1) + 1, where h1, h2 are the two little-endian 64-bit
    halves of BLAKE2b-128(name as UTF-8, key=seed).
    """
    return _params(_encode_name(name), _check_size(size), _check_seed(seed))


def _prepare(
    backends: Backends, size: int, seed: bytes
) -> tuple[int, list[int], list[int], list[int], list[int]]:
    """Validate and return (M, order, offsets, skips, weights), the last three in name order.

    order[k] is the input index of the k-th backend by name; draining (weight 0) backends are
    left out here, which cannot change the table since they never take a turn anyway.
    """
    m = _check_size(size)
    key = _check_seed(seed)
    names, weights = _check_backends(backends)
    order = sorted((i for i in range(len(names)) if weights[i] > 0), key=names.__getitem__)
    offsets: list[int] = []
    skips: list[int] = []
    for i in order:
        offset, skip = _params(names[i], m, key)
        offsets.append(offset)
        skips.append(skip)
    return m, order, offsets, skips, [weights[i] for i in order]


def _to_input_order(filled: Table, order: list[int]) -> Table:
    # Append -1 so that empty slots (-1) map to -1 through the same lookup.
    lookup = np.array([*order, -1], dtype=np.int32)
    return lookup[filled]


def _int_list(values: Sequence[object] | npt.NDArray[np.integer], what: str) -> list[object]:
    if isinstance(values, np.ndarray) and values.ndim != 1:
        raise MaglevError(f"{what} must be one-dimensional")
    if isinstance(values, str | bytes):
        raise MaglevError(f"{what} must be a sequence of ints")
    return list(values)


def populate(
    offsets: Sequence[int] | npt.NDArray[np.integer],
    skips: Sequence[int] | npt.NDArray[np.integer],
    weights: Sequence[int] | npt.NDArray[np.integer],
    size: int,
) -> Table:
    """Fill a table from explicit per-backend offsets, skips and weights (in turn order).

    Returns int32 slots holding the backend's position in the given arrays, -1 if none.
    """
    m = _check_size(size)
    offs = _int_list(offsets, "offsets")
    sks = _int_list(skips, "skips")
    wts = _int_list(weights, "weights")
    if not len(offs) == len(sks) == len(wts):
        raise MaglevError(
            f"offsets, skips and weights must have equal lengths, got "
            f"{len(offs)}, {len(sks)}, {len(wts)}"
        )
    cols: list[list[int]] = [[], [], []]
    for i, (o, k, w) in enumerate(zip(offs, sks, wts, strict=True)):
        offset, skip = _as_int(o), _as_int(k)
        if offset is None or not 0 <= offset < m:
            raise MaglevError(f"offset {i} must be an int in [0, {m - 1}], got {o!r}")
        if skip is None or not 1 <= skip < m:
            raise MaglevError(f"skip {i} must be an int in [1, {m - 1}], got {k!r}")
        cols[0].append(offset)
        cols[1].append(skip)
        cols[2].append(_check_weight(w, f"entry {i}"))
    return _fill(cols[0], cols[1], cols[2], m)


def _fill(offsets: list[int], skips: list[int], weights: list[int], m: int) -> Table:
    out = np.empty(m, dtype=np.int32)
    _maglev.fill(
        np.array(offsets, dtype=np.uint32),
        np.array(skips, dtype=np.uint32),
        np.array(weights, dtype=np.uint32),
        m,
        out,
    )
    return out


def build_table(
    backends: Backends, size: int = DEFAULT_TABLE_SIZE, seed: bytes = DEFAULT_SEED
) -> Table:
    """Build the Maglev lookup table for (name, weight) pairs.

    Slot values are indices into ``backends`` as given, -1 where no backend has a positive weight.
    The result depends only on the set of (name, weight) pairs, size and seed, not on order.
    """
    m, order, offsets, skips, weights = _prepare(backends, size, seed)
    return _to_input_order(_fill(offsets, skips, weights, m), order)


def reference_populate(
    offsets: Sequence[int], skips: Sequence[int], weights: Sequence[int], size: int
) -> list[int]:
    """Pure-Python population loop, written from the definition rather than from the C code."""
    n = len(offsets)
    table = [-1] * size
    wmax = max(weights, default=0)
    if wmax == 0:
        return table
    nexts = [0] * n  # how far down its preference list each backend has got
    filled = 0
    rnd = 0
    while filled < size:
        for i in range(n):
            if filled == size:
                break
            # Backend i takes floor((r+1)w/wmax) - floor(rw/wmax) turns (0 or 1) in round r.
            if (rnd + 1) * weights[i] // wmax == rnd * weights[i] // wmax:
                continue
            while True:
                slot = (offsets[i] + nexts[i] * skips[i]) % size
                nexts[i] += 1
                if table[slot] == -1:
                    table[slot] = i
                    filled += 1
                    break
        rnd += 1
    return table


def reference_table(
    backends: Backends, size: int = DEFAULT_TABLE_SIZE, seed: bytes = DEFAULT_SEED
) -> Table:
    """Same result as ``build_table`` via ``reference_populate`` (slow; for tests)."""
    m, order, offsets, skips, weights = _prepare(backends, size, seed)
    filled = np.array(reference_populate(offsets, skips, weights, m), dtype=np.int32)
    return _to_input_order(filled, order)


def _check_table(table: npt.ArrayLike, n: int, what: str) -> npt.NDArray[np.int64]:
    arr = np.asarray(table)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise MaglevError(f"{what} must be a one-dimensional integer array")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < -1 or arr.max() >= n):
        raise MaglevError(f"{what} holds indices outside [-1, {n - 1}]")
    return arr


def _names(backends: Backends) -> list[bytes]:
    names, _ = _check_backends(backends)
    return names


def table_digest(table: npt.ArrayLike, backends: Backends) -> str:
    """Hex SHA-256 of (sorted names, table in sorted-name positions); order-independent.

    Two nodes whose tables route every slot to the same backend name get the same digest even
    if their configured backend lists are in different orders.
    """
    names = _names(backends)
    arr = _check_table(table, len(names), "table")
    order = sorted(range(len(names)), key=names.__getitem__)
    rank = np.empty(len(names) + 1, dtype=np.int64)
    rank[order] = np.arange(len(names))
    rank[-1] = -1  # empty slots stay -1
    h = hashlib.sha256(b"shoal-maglev-digest-v1\0")
    h.update(len(names).to_bytes(4, "little"))
    for i in order:
        # Length-prefix each name so that ("ab", "c") and ("a", "bc") cannot collide.
        h.update(len(names[i]).to_bytes(4, "little") + names[i])
    h.update(len(arr).to_bytes(4, "little"))
    h.update(rank[arr].astype("<i4").tobytes())
    return h.hexdigest()


def slot_changes(
    old: npt.ArrayLike, old_backends: Backends, new: npt.ArrayLike, new_backends: Backends
) -> float:
    """Fraction of slots whose backend name (or emptiness) differs between two tables."""
    old_names, new_names = _names(old_backends), _names(new_backends)
    a = _check_table(old, len(old_names), "old table")
    b = _check_table(new, len(new_names), "new table")
    if len(a) != len(b):
        raise MaglevError(f"tables differ in size: {len(a)} and {len(b)}")
    if len(a) == 0:
        return 0.0
    # Give every name one global id so that the two index spaces become comparable.
    ids = {name: k for k, name in enumerate(sorted(set(old_names) | set(new_names)))}
    old_ids = np.array([ids[x] for x in old_names] + [-1], dtype=np.int64)
    new_ids = np.array([ids[x] for x in new_names] + [-1], dtype=np.int64)
    return float(np.count_nonzero(old_ids[a] != new_ids[b]) / len(a))


def shares(table: npt.ArrayLike, n: int) -> npt.NDArray[np.float64]:
    """Fraction of all slots held by each backend index 0..n-1 (empty slots count for nobody)."""
    count = _as_int(n)
    if count is None or count < 0:
        raise MaglevError(f"backend count must be a non-negative int, got {n!r}")
    arr = _check_table(table, count, "table")
    if len(arr) == 0:
        return np.zeros(count, dtype=np.float64)
    counts = np.bincount(arr[arr >= 0], minlength=count)
    return counts / len(arr)
