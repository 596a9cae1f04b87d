"""Model files: `MatrixFactorization.save(path)` and `latentmf.load(path)`.

A model file is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays) read with
``allow_pickle=False``: it holds data only, never code, so a file from a stranger cannot run
anything when loaded. Its members:

``header``
    A 0-d unicode array holding a JSON object: ``format`` (the model class, e.g.
    "latentmf.MatrixFactorization"), ``version`` (2), ``latentmf_version`` (of the writer),
    ``params`` (the hyper-parameters, as `get_params` gives them) and ``state``, the fitted state:
    ``settings`` (the checked hyper-parameters the model was fitted with), ``arrays`` (the names of
    the native arrays below), ``dtype``, ``n_users``, ``n_items``, ``factors``, ``n_ratings``,
    ``global_mean``, ``mean_rating``, ``rating_range`` ([smallest, largest], null where unknown),
    ``derived`` (numbers the fit derived from its data, e.g. ``default_learning_rate``),
    ``history`` (the lists of ``history_``, NaN written as null) and ``best_epoch``.
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

Files of version 1 (latentmf 0.x before the fitted state had its own header entry) are read too.

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

import errno
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

from . import base
from ._checks import check_memory
from ._version import __version__
from .idmap import IdMap
from .state import DataSummary, FittedState, SeenItems, array_shape, new_native

VERSION = 2
_MAX_ROWS = np.iinfo(np.int32).max
#: The JSON header holds hyper-parameters, sizes and the history: far below this.
_MAX_HEADER_BYTES = 64 * 2**20
#: What a damaged or hostile file can make the readers below raise.
#: (NumPy parses a damaged .npy header into SyntaxError or tokenize's TokenError.)
_DAMAGED = (ValueError, TypeError, OverflowError, EOFError, OSError, RuntimeError, NotImplementedError,
            SyntaxError, tokenize.TokenError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error)
_SEEN = ("seen_offsets", "seen_items")
#: The members of a solver's own arrays (FittedState.solver_state) are named with this prefix.
SOLVER_PREFIX = "solver_"
_ID_MAPS = ("user_ids", "item_ids")


def state_members(format_name: str, state: FittedState) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(header, arrays) of a fitted state: the "state" entry of a model file's header and its
    array members; a pickle holds the same."""
    native, data = state.native, state.data
    arrays = dict(state.arrays())
    for name, ids in (("user_ids", data.user_ids), ("item_ids", data.item_ids)):
        if ids is not None:
            arrays[name] = ids.ids
    arrays["seen_offsets"], arrays["seen_items"] = state.seen.lists()
    for name, array in state.solver_state.items():
        arrays[SOLVER_PREFIX + name] = array
    header = {
        "format": format_name,
        "settings": {name: _plain(value) for name, value in state.settings.items()},
        "arrays": list(state.layout),
        "dtype": state.dtype,
        "n_users": data.n_users,
        "n_items": data.n_items,
        "factors": state.n_factors,
        "n_ratings": data.n_ratings,
        "global_mean": float(native.global_mean),
        "mean_rating": data.mean,
        "rating_range": [_or_null(data.low), _or_null(data.high)],
        "derived": dict(state.derived),
        "history": {key: [_or_null(v) for v in values] for key, values in state.history.items()},
        "best_epoch": state.best_epoch,
        "solver_arrays": {name: [list(array.shape), array.dtype.name] for name, array in state.solver_state.items()},
    }
    return header, arrays


def _plain(value: Any) -> Any:
    """A hyper-parameter as a JSON value (NumPy scalars and dtypes become Python ones)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (type, np.dtype)):
        return np.dtype(value).name
    return value


def _or_null(value: float) -> float | None:
    return None if not math.isfinite(value) else value


def save(path: Any, format_name: str, params: dict[str, Any], state: FittedState) -> None:
    """Write a model to `path` atomically: into a new file beside it, flushed to disk, then renamed
    over it. On any failure (KeyboardInterrupt included) the new file is removed and the old one
    is left as it was."""
    state_header, arrays = state_members(format_name, state)
    header = {"format": format_name, "version": VERSION, "latentmf_version": __version__,
              "params": {name: _plain(value) for name, value in params.items()}, "state": state_header}
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        # Else the error would name the temporary file, which the caller never asked for.
        raise FileNotFoundError(errno.ENOENT, "no such directory to save the model in", folder)
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


def load(path: Any) -> base.FactorModel:
    """The model saved at `path` by a model's `save`, checked before it is read.

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
    try:
        return base.new_model(header["format"], header["params"],
                              restore_state(header["format"], header["state"], arrays))
    except (ValueError, TypeError) as error:
        raise ValueError(f"{source}: {error}") from None


def _read(file: IO[bytes]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(header, arrays) of an open model file, each step checked before the next (see the module);
    a version 1 header comes back in the form of version 2."""
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
            header = _current_form(header)
            _check_declared(header["format"], header["state"],
                            {name: (m.shape, m.dtype) for name, m in members.items()})
        except (ValueError, TypeError) as error:
            raise _Refused(str(error)) from None
        check_memory(sum(m.nbytes for m in members.values()), "the arrays of the model file")
        arrays = {name: _read_member(archive, member) for name, member in members.items()}
    return header, arrays


def _links_off_where_missing(header: dict[str, Any]) -> None:
    """Gibbs models saved before implicit_links existed hold chains without links: their
    hyper-parameters and settings get implicit_links=0, which says so."""
    if header.get("format") != "latentmf.MatrixFactorization":
        return
    state = header.get("state")
    for params in (header.get("params"), state.get("settings") if isinstance(state, dict) else None):
        if isinstance(params, dict) and params.get("solver") == "gibbs":
            params.setdefault("implicit_links", 0.0)


def _current_form(header: Any) -> dict[str, Any]:
    """The header, checked to be a latentmf model's of a version this reads, as version 2 has it."""
    if not isinstance(header, dict):
        raise ValueError("the header does not describe a latentmf model")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        raise ValueError(f"model file version {version!r} is not one this latentmf ({__version__}) reads "
                         f"(1 to {VERSION})")
    base.model_class(header.get("format"))
    _links_off_where_missing(header)
    # The hyper-parameters must be ones the model class takes (they need not be those of the fit).
    settings, layout, _ = base.fitted_settings(header["format"], _field(header, "params", dict), {})
    if version == 2:
        _field(header, "state", dict)
        return header
    # Version 1 had the state's entries at the top, the settings implied by the hyper-parameters,
    # and neither the number of ratings nor their range.
    state = {name: header.get(name) for name in ("dtype", "n_users", "n_items", "factors", "global_mean",
                                                 "mean_rating", "history", "best_epoch")}
    state.update(settings=settings, arrays=list(layout), n_ratings=None, rating_range=[None, None],
                 derived={"default_learning_rate": header.get("default_learning_rate")}, solver_arrays={})
    return {**header, "state": state}


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


def restore_state(format_name: str, header: Any, arrays: dict[str, np.ndarray]) -> FittedState:
    """The fitted state that `header` (a model file's "state" entry) and `arrays` describe, after
    checking all of them."""
    settings, layout, n_users, n_items, factors, dtype, derived = _check_declared(
        format_name, header, {name: (array.shape, array.dtype) for name, array in arrays.items()})
    for name in layout:
        if not np.isfinite(arrays[name]).all():
            raise ValueError(f"{name} holds values that are not finite")
    id_maps = {name: _id_map(arrays[name], name, count)
               for name, count in (("user_ids", n_users), ("item_ids", n_items)) if name in arrays}
    offsets, items = _seen_lists(arrays, n_users, n_items)
    global_mean = _finite(header, "global_mean")
    mean = _finite(header, "mean_rating")
    n_ratings = header.get("n_ratings")
    if n_ratings is None:
        n_ratings = len(items)
    elif isinstance(n_ratings, bool) or not isinstance(n_ratings, int) or n_ratings < 0:
        raise ValueError(f"n_ratings must be a count, got {n_ratings!r}")
    low, high = _rating_range(header)
    history = _history(header)
    best_epoch = header.get("best_epoch")
    if best_epoch is not None and (not isinstance(best_epoch, int) or isinstance(best_epoch, bool)):
        raise ValueError(f"best_epoch must be an integer or null, got {best_epoch!r}")

    native = new_native(dtype, n_users, n_items, factors)
    for name in layout:
        getattr(native, name)[...] = arrays[name]
    native.global_mean = global_mean
    summary = DataSummary(n_users, n_items, n_ratings, mean, low, high, id_maps.get("user_ids"),
                          id_maps.get("item_ids"))
    solver_state = {name[len(SOLVER_PREFIX):]: np.ascontiguousarray(array) for name, array in arrays.items()
                    if name.startswith(SOLVER_PREFIX)}
    for name, array in solver_state.items():
        if not np.isfinite(array).all():
            raise ValueError(f"{SOLVER_PREFIX}{name} holds values that are not finite")
    return FittedState(native, settings, layout, summary, SeenItems(lists=(offsets, items)), history, best_epoch,
                       derived, solver_state=solver_state)


def _check_declared(format_name: Any, header: Any,
                    declared: dict[str, tuple[tuple[int, ...], np.dtype]]) -> tuple[Any, ...]:
    """Check the state's header, and the names, shapes and dtypes of the arrays against it (before
    any is read); returns (settings, layout, n_users, n_items, factors, dtype, derived)."""
    if not isinstance(header, dict):
        raise ValueError("the state must be a JSON object")
    derived = _derived(header)
    settings, layout, width = base.fitted_settings(format_name, _field(header, "settings", dict), derived)
    if header.get("arrays") != list(layout):
        raise ValueError(f"the state names the arrays {header.get('arrays')!r}, but a model of its settings has "
                         f"{list(layout)}")
    n_users, n_items = _size(header, "n_users"), _size(header, "n_items")
    factors = _size(header, "factors")
    dtype = _field(header, "dtype", str)
    if (dtype, factors) != (settings["dtype"], width):
        raise ValueError(f"dtype {dtype!r} and factors {factors} disagree with the settings "
                         f"({settings['dtype']!r}, {width})")
    solver_arrays = _solver_arrays(header)
    names = {name for name in declared if not name.startswith(SOLVER_PREFIX)}
    solver_names = {name for name in declared if name.startswith(SOLVER_PREFIX)}
    if solver_names != {SOLVER_PREFIX + name for name in solver_arrays}:
        raise ValueError(f"the solver's arrays are {sorted(solver_names)}, but the state names "
                         f"{sorted(SOLVER_PREFIX + name for name in solver_arrays)}")
    for name, (shape, kind) in solver_arrays.items():
        if declared[SOLVER_PREFIX + name] != (shape, np.dtype(kind)):
            raise ValueError(f"{SOLVER_PREFIX}{name} must have shape {shape} and dtype {kind}, got "
                             f"{declared[SOLVER_PREFIX + name][0]} and {declared[SOLVER_PREFIX + name][1]}")
    if not set(layout) | set(_SEEN) <= names or not names <= set(layout) | set(_ID_MAPS) | set(_SEEN):
        missing = sorted((set(layout) | set(_SEEN)) - names)
        raise ValueError(f"the arrays are {sorted(names)}, expected {sorted(layout)} plus the seen lists and, "
                         f"optionally, user_ids and item_ids" + (f" ({', '.join(missing)} missing)" if missing else ""))
    for name in layout:
        shape = array_shape(name, n_users, n_items, factors)
        if declared[name] != (shape, np.dtype(dtype)):
            raise ValueError(f"{name} must have shape {shape} and dtype {dtype}, got {declared[name][0]} and "
                             f"{declared[name][1]}")
    for name, count in (("user_ids", n_users), ("item_ids", n_items)):
        if name in declared and (declared[name][0] != (count,) or declared[name][1].kind not in "iU"):
            raise ValueError(f"{name} must be {count} integer or string ids, got shape {declared[name][0]} and dtype "
                             f"{declared[name][1]}")
    for name, kind in (("seen_offsets", np.dtype(np.int64)), ("seen_items", np.dtype(np.int32))):
        if declared[name][1] != kind or len(declared[name][0]) != 1:
            raise ValueError(f"{name} must be a 1-dimensional {kind} array, got {declared[name][1]} "
                             f"{declared[name][0]}")
    return settings, layout, n_users, n_items, factors, dtype, derived


def _derived(header: dict[str, Any]) -> dict[str, float]:
    derived = _field(header, "derived", dict)
    for name, value in derived.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"derived[{name!r}] must be a finite number, got {value!r}")
    return {name: float(value) for name, value in derived.items()}


def _solver_arrays(header: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
    """The solver's arrays the state declares: name -> (shape, dtype of floating point)."""
    declared = _field(header, "solver_arrays", dict)
    arrays = {}
    for name, spec in declared.items():
        if (not isinstance(spec, list) or len(spec) != 2 or not isinstance(spec[0], list)
                or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= _MAX_ROWS for n in spec[0])
                or spec[1] not in ("float32", "float64")):
            raise ValueError(f"solver_arrays[{name!r}] must be [shape, 'float32' or 'float64'], got {spec!r}")
        arrays[name] = (tuple(spec[0]), spec[1])
    return arrays


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


def _rating_range(header: dict[str, Any]) -> tuple[float, float]:
    """[smallest, largest] rating, null where unknown (-inf and inf then)."""
    bounds = header.get("rating_range")
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise ValueError(f"rating_range must be [smallest, largest], got {bounds!r}")
    low = -math.inf if bounds[0] is None else _finite({"rating_range[0]": bounds[0]}, "rating_range[0]")
    high = math.inf if bounds[1] is None else _finite({"rating_range[1]": bounds[1]}, "rating_range[1]")
    if low > high:
        raise ValueError(f"rating_range must be [smallest, largest], got {bounds!r}")
    return low, high


def _history(header: dict[str, Any]) -> dict[str, list[float]]:
    history = _field(header, "history", dict)
    lengths = {len(values) if isinstance(values, list) else -1 for values in history.values()}
    if "epoch" not in history or len(lengths) != 1 or -1 in lengths:
        raise ValueError("history must hold lists of one length, epoch among them")
    restored = {}
    for key, values in history.items():
        if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
            raise ValueError(f"history[{key!r}] must hold numbers")
        restored[key] = [math.nan if v is None else v for v in values]
    return restored
