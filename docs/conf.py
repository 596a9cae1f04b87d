"""Sphinx configuration of the latentmf documentation.

Build from the repository's root, with latentmf and the "docs" extra installed (.ci/docs does both):

    sphinx-build -W --keep-going -b html docs docs/_build/html        # the pages
    sphinx-build -W --keep-going -b doctest docs docs/_build/doctest  # runs every example

The API reference is generated from the docstrings of the installed package (autodoc, with
napoleon reading their NumPy style). The examples of the pages are sphinx.ext.doctest blocks
(testcode, testoutput, doctest) and the command-line examples are `cli-example` blocks (below):
the doctest builder runs all of them, each page's blocks in order in one namespace, in a fresh
temporary folder.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

import latentmf

project = "latentmf"
author = "The latentmf developers"
copyright = "The latentmf developers"
release = latentmf.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

html_theme = "alabaster"
html_title = f"latentmf {release}"
html_theme_options = {"description": "Latent-factor models of ratings", "fixed_sidebar": True}

# MyST: anchors for headings down to ###, so that pages can link to sections.
myst_heading_anchors = 3

# `name` in a docstring links to the Python object of that name when there is one.
default_role = "py:obj"

# autodoc and napoleon: the docstrings are in NumPy style.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
# "Attributes" sections become :ivar: fields, so they do not clash with the members autodoc lists.
napoleon_use_ivar = True
# The estimator's own sections: prose sections, and a list of attributes in the style of Parameters.
napoleon_custom_sections = [
    "Defaults",
    "Threads",
    "Failures",
    ("Attributes (after fit)", "params_style"),
]

# The examples. They must not need the network: while they run, a connection to anything but
# this machine raises OSError. MovieLens 100k is therefore never downloaded: examples that read it
# run only when a copy is found (LATENTMF_DOCS_ML100K, else where tests/conftest.py looks for it),
# linked into the example's folder as ./ml-100k, and are skipped otherwise.
_ML100K = Path(os.environ.get("LATENTMF_DOCS_ML100K")
               or Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k")
doctest_global_setup = f"""
import ipaddress as _ipaddress
import os as _os
import socket as _socket
import tempfile as _tempfile

_docs_cwd = _os.getcwd()
_docs_tmp = _tempfile.TemporaryDirectory(prefix="latentmf-docs-")
_os.chdir(_docs_tmp.name)
HAVE_MOVIELENS = _os.path.isfile({str(_ML100K / "u.data")!r})
if HAVE_MOVIELENS:
    _os.symlink({str(_ML100K)!r}, "ml-100k")

_docs_connect = _socket.socket.connect
def _docs_local_only(sock, address):
    # (A UDP socket's connect sends nothing: distributed uses one to find this machine's address.)
    if (sock.family in (_socket.AF_INET, _socket.AF_INET6) and sock.type == _socket.SOCK_STREAM
            and not _ipaddress.ip_address(address[0]).is_loopback):
        raise OSError(f"the examples of the documentation must not reach the network (connect to {{address!r}})")
    return _docs_connect(sock, address)
_socket.socket.connect = _docs_local_only
"""
doctest_global_cleanup = """
_socket.socket.connect = _docs_connect
_os.chdir(_docs_cwd)
_docs_tmp.cleanup()
"""


class CliExample(SphinxDirective):
    """Command lines shown as a console block, and run by the doctest builder.

    Each line of the content is one `latentmf ...` command; the doctest builder runs them in order
    through `latentmf.cli.main` (in the page's namespace and folder, after the page's earlier
    examples) and fails unless each returns 0. Text after `#` is a comment, shown and not run.
    Options: `:group:` (a doctest group, default "default") and `:skipif:` (as in sphinx.ext.doctest).
    """

    has_content = True
    option_spec = {"group": str, "skipif": str}

    def run(self) -> list[nodes.Node]:
        lines = [line for line in self.content if line.strip()]
        commands = []
        for line in lines:
            words = shlex.split(line, comments=True)
            if not words or words[0] != "latentmf":
                raise self.error(f"cli-example: every line must be a latentmf command, got {line!r}")
            commands.append(words[1:])
        # What the commands print is not compared (it holds timings); their exit status is.
        test = "\n".join([
            "import contextlib as _contextlib, io as _io",
            "from latentmf.cli import main as _cli_main",
            f"for _arguments in {commands!r}:",
            "    _errors = _io.StringIO()",
            "    with _contextlib.redirect_stdout(_io.StringIO()), _contextlib.redirect_stderr(_errors):",
            "        _status = _cli_main(_arguments)",
            "    assert _status == 0, f'latentmf {\" \".join(_arguments)}: {_errors.getvalue()}'",
        ])
        text = "\n".join(lines)
        node = nodes.literal_block(text, text, testnodetype="testcode",
                                   groups=[self.options.get("group", "default")], options={})
        node["test"] = test
        node["language"] = "console"
        if "skipif" in self.options:
            node["skipif"] = self.options["skipif"]
        self.set_source_info(node)
        return [node]


class CliHelp(SphinxDirective):
    """The `--help` text of `latentmf` or of one of its commands, from the parser itself."""

    optional_arguments = 1

    def run(self) -> list[nodes.Node]:
        from latentmf import cli

        parser = cli._parser()
        if self.arguments:
            commands = next(action for action in parser._actions if action.dest == "command")
            parser = commands.choices[self.arguments[0]]
        columns = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "100"
        try:
            text = parser.format_help()
        finally:
            if columns is None:
                del os.environ["COLUMNS"]
            else:
                os.environ["COLUMNS"] = columns
        node = nodes.literal_block(text, text)
        node["language"] = "none"
        return [node]


def setup(app):  # noqa: ANN001, ANN201 - Sphinx's extension hook
    app.add_directive("cli-example", CliExample)
    app.add_directive("cli-help", CliHelp)
    return {"parallel_read_safe": True}
