"""latentmf: fast, deterministic latent-factor (matrix factorization) models of ratings.

The model is R ~ U V^T over the observed ratings only (DESIGN.md), fitted by parallel stratified
SGD or full-batch gradient descent in a C++/OpenMP core. Start with `MatrixFactorization` and
`Ratings`; `latentmf.reference` holds the same math in plain NumPy.
"""

from typing import Any

from . import _core, _isa, datasets, metrics, reference
from ._version import __version__
from .data import Ratings
from .functions import gradients, gradients_dense, loss, sgd_epoch, sgd_order
from .idmap import IdMap
from .model import MatrixFactorization, NotFittedError, UserFactors


_isa.apply_environment()


def build_info() -> dict[str, Any]:
    """How the native core was built: OpenMP (yes/no and version), compiler, Eigen version, the
    instruction sets compiled in, the float types, and the threads available now; `isa_levels`
    are the kernel levels compiled in, `isa_levels_supported` those this CPU runs, and `isa` the
    one that runs (the best supported, or lower if the environment variable LATENTMF_ISA says so)."""
    return _core.build_info()


def load(path: Any) -> MatrixFactorization:
    """The model that `MatrixFactorization.save` wrote to `path`, read without unpickling anything
    and checked member by member (see `latentmf.persistence` for the format)."""
    # Imported here so that `import latentmf` does not pay for json and zipfile.
    from .persistence import load as load_model

    return load_model(path)


__all__ = [
    "IdMap",
    "MatrixFactorization",
    "NotFittedError",
    "Ratings",
    "UserFactors",
    "__version__",
    "build_info",
    "datasets",
    "gradients",
    "gradients_dense",
    "load",
    "loss",
    "metrics",
    "reference",
    "sgd_epoch",
    "sgd_order",
]
