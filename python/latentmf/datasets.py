"""Data sets: MovieLens from GroupLens (downloaded once, checked, cached) and a MovieLens-shaped
synthetic generator that needs no download."""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ._checks import as_integer, as_real
from .data import Ratings

if TYPE_CHECKING:
    from pathlib import Path

#: Where GroupLens publishes the MovieLens archives.
MOVIELENS_URL = "https://files.grouplens.org/datasets/movielens/"

#: The environment variable that moves the download cache (default ~/.cache/latentmf).
CACHE_VARIABLE = "LATENTMF_DATA"


class MovieLensRelease(NamedTuple):
    """One MovieLens archive: its file name, the folder it unpacks to, the ratings file in that
    folder and its format, and the archive's SHA-256 and size in bytes when they are fixed."""

    archive: str
    folder: str
    ratings: str
    format: str
    sha256: str | None
    size: int | None


#: The releases load_movielens knows. The SHA-256 sums and sizes are those published for the
#: frozen releases (the same values are pinned by TensorFlow Datasets). ml-10m has none we could
#: confirm and ml-latest changes with every refresh: for those the archive is checked against the
#: MD5 file GroupLens publishes beside it (<archive>.md5).
MOVIELENS_RELEASES = {
    "100k": MovieLensRelease("ml-100k.zip", "ml-100k", "u.data", "tab",
        "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229", 4924029),
    "1m": MovieLensRelease("ml-1m.zip", "ml-1m", "ratings.dat", "::",
        "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20", 5917549),
    "10m": MovieLensRelease("ml-10m.zip", "ml-10M100K", "ratings.dat", "::",
        None, None),
    "20m": MovieLensRelease("ml-20m.zip", "ml-20m", "ratings.csv", "csv",
        "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3", 198702078),
    "25m": MovieLensRelease("ml-25m.zip", "ml-25m", "ratings.csv", "csv",
        "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa", 261978986),
    "32m": MovieLensRelease("ml-32m.zip", "ml-32m", "ratings.csv", "csv",
        "e4a68655d7386b8f95f2f2424b2ff975dfdd15ffd59e0d864a14dca43e99d6ee", 238950008),
    "latest-small": MovieLensRelease("ml-latest-small.zip", "ml-latest-small", "ratings.csv", "csv",
        "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436", 978202),
    "latest": MovieLensRelease("ml-latest.zip", "ml-latest", "ratings.csv", "csv",
        None, None),
}


def load_movielens(name: str = "100k", *, path: Any = None, cache_dir: Any = None, download: bool = True) -> Ratings:
    """MovieLens ratings as `Ratings` with the release's own user and item ids and the timestamps.

    `name` is one of "100k", "1m", "10m", "20m", "25m", "32m", "latest-small", "latest" (an "ml-"
    prefix is accepted). The ids come back as they are in the files (an `IdMap` per side, so
    predictions and recommendations speak MovieLens ids) and the timestamps (seconds since 1970)
    are kept for `Ratings.split_by_time`; ratings are float32 stars.

    `path` reads an already unpacked release offline: the release's folder (e.g. ``.../ml-100k``)
    or a folder that holds it. Otherwise the release is looked up in the cache directory
    (`cache_dir`, else the LATENTMF_DATA environment variable, else ``~/.cache/latentmf``) and, when
    missing and `download` is true, fetched from GroupLens on first use, checked (SHA-256 and
    size, or the published MD5; see MOVIELENS_RELEASES) and unpacked there.
    """
    # pathlib, hashlib and shutil are imported here, not at `import latentmf`, which stays light.
    from pathlib import Path

    release = _release(name)
    if path is not None:
        folder = _release_folder(Path(path), release)
        if folder is None:
            raise FileNotFoundError(f"no {release.ratings} of MovieLens {name} in {path} or in "
                                    f"{Path(path) / release.folder}")
        return _read_release(folder, release)
    cache = Path(cache_dir) if cache_dir is not None else Path(os.environ.get(CACHE_VARIABLE) or
                                                               Path.home() / ".cache" / "latentmf")
    folder = _release_folder(cache, release)
    if folder is None:
        if not download:
            raise FileNotFoundError(f"MovieLens {name} is not in {cache} and download=False")
        folder = _download_release(release, cache)
    return _read_release(folder, release)


def _release(name: str) -> MovieLensRelease:
    key = name[3:] if isinstance(name, str) and name.startswith("ml-") else name
    if key not in MOVIELENS_RELEASES:
        raise ValueError(f"name must be one of {', '.join(repr(k) for k in MOVIELENS_RELEASES)}, got {name!r}")
    return MOVIELENS_RELEASES[key]


def _release_folder(place: Path, release: MovieLensRelease) -> Path | None:
    """The folder holding the release's ratings file: `place` itself or its release-named subfolder."""
    for folder in (place, place / release.folder):
        if (folder / release.ratings).is_file():
            return folder
    return None


def _read_release(folder: Path, release: MovieLensRelease) -> Ratings:
    """Parse the ratings file in the release's own format: (user, item, rating, timestamp) rows."""
    source = folder / release.ratings
    if release.format == "tab":
        table = np.loadtxt(source, dtype=np.int64, ndmin=2)
    elif release.format == "::":
        # Separators of two characters are beyond loadtxt: make them tabs first. The 1M and 10M
        # files are Latin-1 text (only the movie titles, not the ratings, use it).
        text = source.read_text(encoding="latin-1").replace("::", "\t")
        table = np.loadtxt(io.StringIO(text), delimiter="\t", dtype=np.float64, ndmin=2)
    else:
        table = np.loadtxt(source, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    if table.shape[1] != 4:
        raise ValueError(f"{source} must have 4 columns (user, item, rating, timestamp), got {table.shape[1]}")
    return Ratings.from_ids(table[:, 0].astype(np.int64), table[:, 1].astype(np.int64),
                            table[:, 2].astype(np.float32), timestamps=table[:, 3].astype(np.int64))


def _download_release(release: MovieLensRelease, cache: Path) -> Path:
    """Fetch, check and unpack a release into `cache`; returns its folder. Nothing is left behind on
    failure, and the folder appears only complete (unpacked aside, then renamed)."""
    import shutil

    cache.mkdir(parents=True, exist_ok=True)
    url = MOVIELENS_URL + release.archive
    archive = cache / f".{release.archive}.part"
    unpacked = cache / f".{release.folder}.unpacking"
    try:
        sha256, md5, size = _fetch(url, archive)
        if release.sha256 is not None:
            if sha256 != release.sha256 or size != release.size:
                raise ValueError(f"{url} does not match its published checksum (got SHA-256 {sha256}, {size} "
                                 f"bytes; expected {release.sha256}, {release.size} bytes)")
        else:
            published = _fetch_text(url + ".md5").split()[-1].lower()
            if md5 != published:
                raise ValueError(f"{url} does not match the MD5 GroupLens publishes ({md5} != {published})")
        _unpack(archive, unpacked, release)
        target = cache / release.folder
        if target.exists():
            shutil.rmtree(target)
        os.replace(unpacked / release.folder, target)
        return target
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(unpacked, ignore_errors=True)


def _fetch(url: str, destination: Path) -> tuple[str, str, int]:
    """Download `url` to `destination`; returns its (SHA-256, MD5, size in bytes)."""
    import hashlib
    import urllib.request

    sha256, md5, size = hashlib.sha256(), hashlib.md5(), 0
    with urllib.request.urlopen(url, timeout=60) as response, open(destination, "wb") as file:
        while chunk := response.read(1 << 20):
            sha256.update(chunk)
            md5.update(chunk)
            size += len(chunk)
            file.write(chunk)
    return sha256.hexdigest(), md5.hexdigest(), size


def _fetch_text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read(1 << 16).decode("ascii", errors="replace")


def _unpack(archive: Path, destination: Path, release: MovieLensRelease) -> None:
    import shutil
    import zipfile

    shutil.rmtree(destination, ignore_errors=True)
    with zipfile.ZipFile(archive) as bundle:
        expected = f"{release.folder}/{release.ratings}"
        if expected not in bundle.namelist():
            raise ValueError(f"{release.archive} has no {expected}")
        # extractall keeps every member inside `destination` (it drops absolute paths and "..").
        bundle.extractall(destination)


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """np.unique by sort and mask (np.unique is many times slower on large int64 arrays)."""
    keys = np.sort(keys)
    keep = np.empty(keys.size, dtype=bool)
    keep[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


def synthetic(
    n_users: int = 6040,
    n_items: int = 3706,
    n_ratings: int = 1_000_000,
    *,
    rank: int = 16,
    noise: float = 0.5,
    seed: int = 0,
) -> Ratings:
    """MovieLens-shaped ratings drawn from a known low-rank model, built in memory.

    r = clip(round(3.6 + b_n + c_m + x_n . y_m + noise * N(0, 1)), 1, 5) as float32 stars, with
    b ~ N(0, 0.35^2), c ~ N(0, 0.45^2) and x, y of `rank` factors scaled so that x . y has standard
    deviation 0.9. Which pairs are rated follows MovieLens' skew: item popularity falls off as a
    power law (Zipf, exponent 0.9) and user activity is log-normal (sigma 1). Pairs are distinct;
    user and item indices are shuffled so that popularity does not follow the index. The
    defaults have the shape of MovieLens 1M. The same seed gives the same ratings.
    """
    n_users = as_integer(n_users, "n_users", 1)
    n_items = as_integer(n_items, "n_items", 1)
    n_ratings = as_integer(n_ratings, "n_ratings", 1)
    if n_ratings > 0.5 * n_users * n_items:
        raise ValueError(f"n_ratings={n_ratings} is more than half of the n_users * n_items = "
                         f"{n_users * n_items} possible pairs")
    rank = as_integer(rank, "rank", 1)
    noise = as_real(noise, "noise", 0.0)
    rng = np.random.default_rng(as_integer(seed, "seed", 0))

    item_weight = np.arange(1, n_items + 1, dtype=np.float64) ** -0.9
    item_p = rng.permutation(item_weight / item_weight.sum())
    user_weight = rng.lognormal(0.0, 1.0, size=n_users)
    user_p = user_weight / user_weight.sum()
    keys = np.empty(0, dtype=np.int64)
    while keys.size < n_ratings:
        draw = int(1.25 * (n_ratings - keys.size)) + 1000
        users = rng.choice(n_users, size=draw, p=user_p)
        items = rng.choice(n_items, size=draw, p=item_p)
        fresh = _sorted_unique(np.concatenate([keys, users.astype(np.int64) * n_items + items]))
        if fresh.size - keys.size < 0.01 * draw:
            # The busiest users have rated every popular item: fill up with uniform pairs.
            uniform = rng.integers(0, n_users * n_items, size=2 * (n_ratings - keys.size) + 1000)
            fresh = _sorted_unique(np.concatenate([fresh, uniform]))
        keys = fresh
    keys = rng.permutation(keys)[:n_ratings]
    users, items = keys // n_items, keys % n_items

    scale = (0.9**2 / rank) ** 0.25
    x = rng.normal(0.0, scale, size=(n_users, rank))
    y = rng.normal(0.0, scale, size=(n_items, rank))
    user_bias = rng.normal(0.0, 0.35, size=n_users)
    item_bias = rng.normal(0.0, 0.45, size=n_items)
    values = np.empty(n_ratings, dtype=np.float32)
    chunk = 1 << 20
    for start in range(0, n_ratings, chunk):
        u, i = users[start:start + chunk], items[start:start + chunk]
        r = 3.6 + user_bias[u] + item_bias[i] + np.einsum("ij,ij->i", x[u], y[i])
        r += rng.normal(0.0, noise, size=u.size)
        values[start:start + chunk] = np.clip(np.rint(r), 1, 5)
    return Ratings(users.astype(np.int32), items.astype(np.int32), values, n_users, n_items)
