"""Model files: `MatrixFactorization.save(path)` and `latentmf.load(path)`.

A model file is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays) read with
``allow_pickle=False``: it holds data only, never code, so a file from a stranger cannot run
anything when loaded. Its members:

``header``
    A 0-d unicode array holding a JSON object: ``format`` ("latentmf.MatrixFactorization"),
    ``version`` (1), ``latentmf_version`` (of the writer), ``params`` (the hyper-parameters,
    as `get_params` gives them), ``dtype``, ``n_users``, ``n_items``, ``factors``,
    ``global_mean``, ``mean_rating``, ``default_learning_rate``, ``history`` (the lists of
    ``history_``, NaN written as null), ``best_epoch`` and ``arrays`` (the names of the other
    members).
``U``, ``V``
    The factors, (n_users, factors) and (n_items, factors), of ``dtype``.
``user_bias``, ``item_bias``
    (n_users,) and (n_items,), with biases only.
``user_accumulators``, ``item_accumulators``
    AdaGrad's (n_users, 2) and (n_items, 2) step accumulators, with the "adagrad" solver only,
    so that `partial_fit` continues exactly.
``user_ids``, ``item_ids``
    The raw ids of the rows of U and V (int64, or fixed-width unicode for strings), sorted;
    only when the training data had id maps.
``seen_offsets``, ``seen_items``
    The training items of each user (int64 (n_users + 1,) offsets into sorted int32 item
    indices), so that a loaded model still leaves out seen items when it recommends.

The training ratings themselves are not stored: `partial_fit` on a loaded model needs them
passed. Pickling a model stores the same members.

Loading treats the file as hostile until it has been checked, in this order: the zip directory
and the ``.npy`` header of every member (a member of Python objects is refused unread; a declared
shape must agree with the member's size), then the JSON header, then the members' declared names,
dtypes and shapes against the header, then the memory they need against the machine's physical
memory (MemoryError), and only then the arrays are read (their CRC-32 checked) and their values
checked (finite numbers, id maps, seen lists). Anything wrong raises ValueError naming it, before
anything large is allocated; a path that cannot be opened (missing, a directory, no permission)
raises the OSError of the operating system.

Saving writes a new file beside the target, flushes it to disk, and renames it over the target:
a reader, or a crash, sees the old file or the new one, never a mix. A process killed in the
middle of saving may leave its temporary file (``<target>.<random hex>.tmp``) behind.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import struct
import tokenize
import zipfile
import zlib
from typing import IO, Any, NamedTuple

import numpy as np

from ._checks import check_memory
from ._version import __version__
from .idmap import IdMap
from .model import HISTORY_KEYS, MatrixFactorization, _new_native

FORMAT = "latentmf.MatrixFactorization"
VERSION = 1
_MAX_ROWS = np.iinfo(np.int32).max
#: The JSON header holds hyper-parameters, sizes and the history: far below this.
_MAX_HEADER_BYTES = 64 * 2**20
#: What a damaged or hostile file can make the readers below raise.
#: (NumPy parses a damaged .npy header into SyntaxError or tokenize's TokenError.)
_DAMAGED = (ValueError, TypeError, OverflowError, EOFError, OSError, RuntimeError, NotImplementedError,
            SyntaxError, tokenize.TokenError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error)


def model_state(model: MatrixFactorization) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(header, arrays) of a fitted model: what its file and its pickle hold."""
    native = model._fitted()
    settings = model._settings_used
    arrays = {"U": native.U, "V": native.V}
    if settings["biases"]:
        arrays.update(user_bias=native.user_bias, item_bias=native.item_bias)
    if settings["solver"] == "adagrad":
        arrays.update(user_accumulators=native.user_accumulators, item_accumulators=native.item_accumulators)
    for name, ids in (("user_ids", model.user_ids_), ("item_ids", model.item_ids_)):
        if ids is not None:
            arrays[name] = ids.ids
    arrays["seen_offsets"], arrays["seen_items"] = model._seen_lists()
    header = {
        "format": FORMAT,
        "version": VERSION,
        "latentmf_version": __version__,
        "params": {name: _plain(value) for name, value in model.get_params().items()},
        "dtype": settings["dtype"],
        "n_users": int(native.n_users),
        "n_items": int(native.n_items),
        "factors": int(native.n_factors),
        "global_mean": float(native.global_mean),
        "mean_rating": float(model.mean_rating_),
        "default_learning_rate": float(model._default_learning_rate),
        "history": {key: [None if math.isnan(v) else v for v in values] for key, values in model.history_.items()},
        "best_epoch": model.best_epoch_,
        "arrays": sorted(arrays),
    }
    return header, arrays


def _plain(value: Any) -> Any:
    """A hyper-parameter as a JSON value (NumPy scalars and dtypes become Python ones)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (type, np.dtype)):
        return np.dtype(value).name
    return value


def save(model: MatrixFactorization, path: Any) -> None:
    """Write `model` to `path` atomically: into a new file beside it, flushed to disk, then renamed
    over it. On any failure (KeyboardInterrupt included) the new file is removed and the old one
    is left as it was."""
    header, arrays = model_state(model)
    target = os.fspath(path)
    temporary = f"{target}.{secrets.token_hex(6)}.tmp"
    try:
        with open(temporary, "xb") as file:
            members: dict[str, Any] = {"header": np.array(json.dumps(header, allow_nan=False)), **arrays}
            np.savez(file, **members)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _sync_directory(target)


def _sync_directory(target: str) -> None:
    """Flush the rename to disk too (POSIX); where directories cannot be opened, it is skipped."""
    try:
        descriptor = os.open(os.path.dirname(os.path.abspath(target)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


class _Member(NamedTuple):
    """One .npy member of the archive, as its own header declares it (nothing read yet)."""

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    nbytes: int


def load(path: Any) -> MatrixFactorization:
    """The model saved at `path` by `MatrixFactorization.save`, checked before it is read.

    Nothing in the file is unpickled, and nothing large is allocated before the file's members
    are known to agree with its header and to fit in memory. A file that is not a latentmf model,
    of an unknown version, damaged or truncated, or whose members disagree, raises ValueError; a
    consistent model too large for this machine raises MemoryError; a path that cannot be opened
    raises OSError (FileNotFoundError, IsADirectoryError, PermissionError).
    """
    source = os.fspath(path)
    with open(source, "rb") as file:
        try:
            header, arrays = _read(file)
        except _Refused as error:
            raise ValueError(f"{source}: {error}") from None
        except _DAMAGED as error:
            raise ValueError(f"{source} is not a readable latentmf model file: {error}") from None
    model = MatrixFactorization()
    try:
        restore_state(model, header, arrays)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{source}: {error}") from None
    return model


def _read(file: IO[bytes]) -> tuple[Any, dict[str, np.ndarray]]:
    """(header, arrays) of an open model file, each step checked before the next (see the module)."""
    if file.read(6) == b"\x93NUMPY":
        raise ValueError("it holds a single array (.npy), not a model's .npz archive")
    file.seek(0)
    with zipfile.ZipFile(file) as archive:
        members = _members(archive)
        if "header" not in members:
            raise ValueError("it has no header member")
        header_member = members.pop("header")
        if header_member.shape != () or header_member.dtype.kind != "U" or header_member.nbytes > _MAX_HEADER_BYTES:
            raise ValueError(f"its header must be one string of at most {_MAX_HEADER_BYTES} bytes, got dtype "
                             f"{header_member.dtype} and shape {header_member.shape}")
        header = json.loads(str(_read_member(archive, header_member)[()]))
        try:
            _check_declared(header, {name: (m.shape, m.dtype) for name, m in members.items()})
        except (ValueError, TypeError) as error:
            raise _Refused(str(error)) from None
        check_memory(sum(m.nbytes for m in members.values()), "the arrays of the model file")
        arrays = {name: _read_member(archive, member) for name, member in members.items()}
    return header, arrays


class _Refused(Exception):
    """A check of the header against the members failed: its message is load's, as it is."""


def _members(archive: zipfile.ZipFile) -> dict[str, _Member]:
    """Every member's name and declared shape and dtype, from the .npy headers alone."""
    members: dict[str, _Member] = {}
    for info in archive.infolist():
        name = info.filename[:-4] if info.filename.endswith(".npy") else None
        if name is None or name in members:
            raise ValueError(f"member {info.filename!r} is not an array of a model file (or repeats one)")
        with archive.open(info) as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f"member {name!r} has .npy format version {version}, not 1.0 or 2.0")
            offset = stream.tell()
        if dtype.hasobject:
            raise ValueError(f"member {name!r} holds Python objects (pickled data): a model file holds numbers and "
                             "strings only, and latentmf never unpickles")
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes != info.file_size:
            raise ValueError(f"member {name!r} declares shape {shape} of {dtype} ({nbytes} bytes) but holds "
                             f"{info.file_size - offset} bytes: the file is truncated or damaged")
        members[name] = _Member(info, shape, dtype, nbytes)
    return members


def _read_member(archive: zipfile.ZipFile, member: _Member) -> np.ndarray:
    """The array of a checked member; reading it to its end checks its CRC-32."""
    with archive.open(member.info) as stream:
        array = np.lib.format.read_array(stream, allow_pickle=False)
        if stream.read(1):
            raise ValueError(f"member {member.info.filename!r} holds more than its array")
    return array


def restore_state(model: MatrixFactorization, header: Any, arrays: dict[str, np.ndarray]) -> None:
    """Make `model` the model that `header` and `arrays` describe, after checking all of them."""
    plan = _check_declared(header, {name: (array.shape, array.dtype) for name, array in arrays.items()})
    settings, params, n_users, n_items, factors, dtype, expected, optional = plan
    for name in expected:
        if not np.isfinite(arrays[name]).all():
            raise ValueError(f"{name} holds values that are not finite")
    id_maps = {name: _id_map(arrays[name], name, count) for name, count in optional.items() if name in arrays}
    seen = _seen_lists(arrays, n_users, n_items)
    numbers = {name: _finite(header, name) for name in ("global_mean", "mean_rating", "default_learning_rate")}
    history = _history(header)
    best_epoch = header.get("best_epoch")
    if best_epoch is not None and (not isinstance(best_epoch, int) or isinstance(best_epoch, bool)):
        raise ValueError(f"best_epoch must be an integer or null, got {best_epoch!r}")

    native = _new_native(dtype, n_users, n_items, factors)
    for name in expected:
        getattr(native, name)[...] = arrays[name]
    native.global_mean = numbers["global_mean"]
    model.set_params(**params)
    model._native, model._training, model._seen, model._settings_used = native, None, seen, settings
    model._default_learning_rate = numbers["default_learning_rate"]
    model.mean_rating_ = numbers["mean_rating"]
    model.user_ids_ = id_maps.get("user_ids")
    model.item_ids_ = id_maps.get("item_ids")
    model.history_ = history
    model.best_epoch_ = best_epoch


def _check_declared(header: Any, declared: dict[str, tuple[tuple[int, ...], np.dtype]]) -> tuple[Any, ...]:
    """Check the header, and the names, shapes and dtypes of the arrays against it (before any is
    read); returns what restoring the model needs."""
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"the header does not describe a {FORMAT}")
    version = header.get("version")
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise ValueError(f"model file version {version!r} is not one this latentmf ({__version__}) reads "
                         f"(1 to {VERSION})")
    params = _field(header, "params", dict)
    unknown = set(params) - set(MatrixFactorization._parameter_names())
    if unknown:
        raise ValueError(f"unknown hyper-parameters {sorted(unknown)}")
    candidate = MatrixFactorization(**params)
    settings = candidate._settings()
    n_users, n_items = _size(header, "n_users"), _size(header, "n_items")
    factors = _size(header, "factors")
    dtype = _field(header, "dtype", str)
    if (dtype, factors) != (settings["dtype"], settings["factors"]):
        raise ValueError(f"dtype {dtype!r} and factors {factors} disagree with the hyper-parameters "
                         f"({settings['dtype']!r}, {settings['factors']})")
    expected = _expected_arrays(settings, n_users, n_items, factors)
    optional = {"user_ids": n_users, "item_ids": n_items}
    names = set(declared)
    if not set(expected) <= names or not names <= set(expected) | set(optional) | {"seen_offsets", "seen_items"}:
        raise ValueError(f"the arrays are {sorted(names)}, expected {sorted(expected)} plus the seen lists and, "
                         "optionally, user_ids and item_ids")
    for name, shape in expected.items():
        if declared[name] != (shape, np.dtype(dtype)):
            raise ValueError(f"{name} must have shape {shape} and dtype {dtype}, got {declared[name][0]} and "
                             f"{declared[name][1]}")
    for name, count in optional.items():
        if name in declared and (declared[name][0] != (count,) or declared[name][1].kind not in "iU"):
            raise ValueError(f"{name} must be {count} integer or string ids, got shape {declared[name][0]} and dtype "
                             f"{declared[name][1]}")
    for name, kind, ndim in (("seen_offsets", np.dtype(np.int64), 1), ("seen_items", np.dtype(np.int32), 1)):
        if name not in declared:
            raise ValueError("seen_offsets and seen_items are missing")
        if declared[name][1] != kind or len(declared[name][0]) != ndim:
            raise ValueError(f"{name} must be a 1-dimensional {kind} array, got {declared[name][1]} "
                             f"{declared[name][0]}")
    return settings, params, n_users, n_items, factors, dtype, expected, optional


def _expected_arrays(settings: dict[str, Any], n_users: int, n_items: int,
                     factors: int) -> dict[str, tuple[int, ...]]:
    """The factor arrays the settings call for, by name (as the native model names them), with shapes."""
    shapes: dict[str, tuple[int, ...]] = {"U": (n_users, factors), "V": (n_items, factors)}
    if settings["biases"]:
        shapes.update(user_bias=(n_users,), item_bias=(n_items,))
    if settings["solver"] == "adagrad":
        shapes.update(user_accumulators=(n_users, 2), item_accumulators=(n_items, 2))
    return shapes


def _field(header: dict[str, Any], name: str, kind: type) -> Any:
    value = header.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise ValueError(f"header field {name} must be a {kind.__name__}, got {value!r}")
    return value


def _size(header: dict[str, Any], name: str) -> int:
    value = _field(header, name, int)
    if not 1 <= value <= _MAX_ROWS:
        raise ValueError(f"header field {name} = {value} is outside [1, {_MAX_ROWS}]")
    return value


def _finite(header: dict[str, Any], name: str) -> float:
    value = header.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"header field {name} must be a finite number, got {value!r}")
    return float(value)


def _id_map(array: np.ndarray, name: str, count: int) -> IdMap:
    if array.ndim != 1 or len(array) != count or array.dtype.kind not in "iU":
        raise ValueError(f"{name} must be {count} integer or string ids, got shape {array.shape} and dtype "
                         f"{array.dtype}")
    try:
        return IdMap(array)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


def _seen_lists(arrays: dict[str, np.ndarray], n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """The seen offsets and items, checked to be what the native top-N code assumes."""
    offsets, items = arrays.get("seen_offsets"), arrays.get("seen_items")
    if offsets is None or items is None:
        raise ValueError("seen_offsets and seen_items are missing")
    if offsets.shape != (n_users + 1,) or offsets.dtype != np.int64:
        raise ValueError(f"seen_offsets must be int64 of shape ({n_users + 1},), got {offsets.dtype} {offsets.shape}")
    if items.ndim != 1 or items.dtype != np.int32:
        raise ValueError(f"seen_items must be a 1-dimensional int32 array, got {items.dtype} {items.shape}")
    counts = np.diff(offsets)
    if offsets[0] != 0 or offsets[-1] != len(items) or (counts < 0).any():
        raise ValueError("seen_offsets must rise from 0 to the number of seen items")
    if len(items) and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(f"seen_items must be item indices in [0, {n_items})")
    # Within each user the items must increase: (user, item) keys never decrease.
    keys = np.repeat(np.arange(n_users, dtype=np.int64), counts) * n_items + items
    if (np.diff(keys) < 0).any():
        raise ValueError("seen_items must be sorted within each user")
    return np.ascontiguousarray(offsets), np.ascontiguousarray(items)


def _history(header: dict[str, Any]) -> dict[str, list[float]]:
    history = _field(header, "history", dict)
    if set(history) != set(HISTORY_KEYS):
        raise ValueError(f"history must have the keys {list(HISTORY_KEYS)}, got {sorted(history)}")
    lengths = {len(values) if isinstance(values, list) else -1 for values in history.values()}
    if len(lengths) != 1 or -1 in lengths:
        raise ValueError("history must hold lists of one length")
    restored = {}
    for key in HISTORY_KEYS:
        values = history[key]
        if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
            raise ValueError(f"history[{key!r}] must hold numbers")
        restored[key] = [math.nan if v is None else v for v in values]
    return restored
