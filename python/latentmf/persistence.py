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
passed. Loading checks every member (version, names, dtypes, shapes, finite values, id and seen
lists) and raises ValueError naming what is wrong. Pickling a model stores the same members.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import zipfile
from typing import Any

import numpy as np

from ._version import __version__
from .idmap import IdMap
from .model import HISTORY_KEYS, MatrixFactorization, _new_native

FORMAT = "latentmf.MatrixFactorization"
VERSION = 1
_MAX_ROWS = np.iinfo(np.int32).max


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
    """Write `model` to `path` atomically: into a new file beside it, then renamed over it."""
    header, arrays = model_state(model)
    target = os.fspath(path)
    temporary = f"{target}.{secrets.token_hex(6)}.tmp"
    try:
        with open(temporary, "xb") as file:
            members: dict[str, Any] = {"header": np.array(json.dumps(header, allow_nan=False)), **arrays}
            np.savez(file, **members)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def load(path: Any) -> MatrixFactorization:
    """The model saved at `path` by `MatrixFactorization.save`, checked member by member.

    Nothing in the file is unpickled. A file that is not a latentmf model, of an unknown version,
    or whose members disagree raises ValueError.
    """
    source = os.fspath(path)
    try:
        archive = np.load(source, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(f"{source} is not a latentmf model file: {error}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{source} is not a latentmf model file: it holds a single array, not an .npz archive")
    with archive:
        if "header" not in archive.files:
            raise ValueError(f"{source} is not a latentmf model file: it has no header")
        try:
            header = json.loads(str(archive["header"][()]))
            arrays = {name: archive[name] for name in archive.files if name != "header"}
        except (ValueError, OSError, zipfile.BadZipFile) as error:
            raise ValueError(f"{source} is not a readable latentmf model file: {error}") from None
    model = MatrixFactorization()
    try:
        restore_state(model, header, arrays)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{source}: {error}") from None
    return model


def restore_state(model: MatrixFactorization, header: Any, arrays: dict[str, np.ndarray]) -> None:
    """Make `model` the model that `header` and `arrays` describe, after checking all of them."""
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
    names = set(arrays)
    if not set(expected) <= names or not names <= set(expected) | set(optional) | {"seen_offsets", "seen_items"}:
        raise ValueError(f"the arrays are {sorted(names)}, expected {sorted(expected)} plus the seen lists and, "
                         "optionally, user_ids and item_ids")
    for name, shape in expected.items():
        _check_array(arrays[name], name, shape, dtype)
    id_maps = {name: _id_map(arrays[name], name, count) for name, count in optional.items() if name in arrays}
    seen = _seen_lists(arrays, n_users, n_items)
    numbers = {name: _finite(header, name) for name in ("global_mean", "mean_rating", "default_learning_rate")}
    history = _history(header)
    best_epoch = header.get("best_epoch")
    if best_epoch is not None and not isinstance(best_epoch, int):
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


def _check_array(array: np.ndarray, name: str, shape: tuple[int, ...], dtype: str) -> None:
    if array.shape != shape or array.dtype != np.dtype(dtype):
        raise ValueError(f"{name} must have shape {shape} and dtype {dtype}, got {array.shape} and {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds values that are not finite")


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
