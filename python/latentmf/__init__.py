"""latentmf: fast, deterministic latent-factor (matrix factorization) models of ratings.

The model is R ~ U V^T over the observed ratings only (docs/model.md), fitted by parallel stratified
SGD or full-batch gradient descent in a C++/OpenMP core. Start with `MatrixFactorization` and
`Ratings`; `latentmf.reference` holds the same math in plain NumPy.
"""

from typing import Any

from . import _core, _isa, datasets, metrics, reference
from ._version import __version__
from .answers import TopItems, UnknownIdError, UnknownIdWarning, UserFactors
from .base import FactorModel, NotFittedError
from .bpr import BayesianPersonalizedRanking
from .data import Ratings
from .functions import (bpr_sub_epoch, bpr_triples, gibbs_sweep, gradients, gradients_dense, gramian, implicit_loss,
                        loss, sgd_epoch, sgd_order, solve_rows)
from .idmap import IdMap
from .implicit import ImplicitMatrixFactorization
from .model import MatrixFactorization

_isa.apply_environment()


def build_info() -> dict[str, Any]:
    """How the native core was built: OpenMP (yes/no and version), compiler, Eigen version, the
    instruction sets compiled in, the float types, and the threads available now; `isa_levels`
    are the kernel levels compiled in, `isa_levels_supported` those this CPU runs, and `isa` the
    one that runs (the best supported, or lower if the environment variable LATENTMF_ISA says so)."""
    return _core.build_info()


def select_isa(level: str) -> None:
    """Run the native kernels of instruction-set `level` ("generic", "avx2", "avx512") from the
    next call on, instead of the best this CPU runs: for example to get the same bits on machines
    of different levels (results at one level do not depend on the thread count; between levels
    they agree to rounding). ValueError for a level this build lacks or this CPU cannot run; the
    environment variable LATENTMF_ISA does the same at import. `build_info()["isa"]` tells which
    level runs."""
    _core.select_isa(level)


def load(path: Any) -> FactorModel:
    """The model that a model's `save` wrote to `path`, of its class, read without unpickling
    anything and checked member by member (see `latentmf.persistence` for the format)."""
    # Imported here so that `import latentmf` does not pay for json and zipfile.
    from .persistence import load as load_model

    return load_model(path)


__all__ = [
    "BayesianPersonalizedRanking",
    "FactorModel",
    "IdMap",
    "ImplicitMatrixFactorization",
    "MatrixFactorization",
    "NotFittedError",
    "Ratings",
    "TopItems",
    "UnknownIdError",
    "UnknownIdWarning",
    "UserFactors",
    "__version__",
    "bpr_sub_epoch",
    "bpr_triples",
    "build_info",
    "datasets",
    "gibbs_sweep",
    "gradients",
    "gradients_dense",
    "gramian",
    "implicit_loss",
    "load",
    "loss",
    "metrics",
    "reference",
    "select_isa",
    "sgd_epoch",
    "sgd_order",
    "solve_rows",
]
