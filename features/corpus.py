"""Training text for SAEs that is on the machine already: no download at run time.

* ``"python-docs"`` — the reStructuredText sources of the Python 3.11 documentation from Debian's ``python3.11-doc``
  package (``/usr/share/doc/python3.11/html/_sources``; 497 files, 11 MB, ≈ 2.9 M SmolLM2 tokens; PSF License
  2.0). English prose with code, the register of an LLM curriculum. ``make setup`` installs the package on Debian;
  ``STEERSCOPE_PYTHON_DOCS`` points at another copy of the ``_sources`` folder.
* ``"pydoc-topics"`` — the help topics CPython ships in its standard library (``pydoc_data.topics``; ≈ 0.2 M
  tokens; PSF License). Always present, so tests and a machine without the Debian package still have text.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from interp.errors import InputError

CORPORA = ("python-docs", "pydoc-topics")
PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/_sources")


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Named training text: its documents, where they came from and under which licence."""

    name: str
    documents: tuple[str, ...]
    origin: str
    licence: str

    @property
    def n_characters(self) -> int:
        return sum(len(d) for d in self.documents)


def python_docs_folder() -> Path:
    return Path(os.environ.get("STEERSCOPE_PYTHON_DOCS") or PYTHON_DOCS)


def load_corpus(name: str) -> Corpus:
    """The corpus ``name`` (one of :data:`CORPORA`), documents in a fixed order."""
    if name == "pydoc-topics":
        from pydoc_data.topics import topics

        documents = tuple(topics[key] for key in sorted(topics))
        return Corpus(name, documents, "CPython's pydoc_data.topics (standard library)", "PSF License 2.0")
    if name == "python-docs":
        folder = python_docs_folder()
        files = sorted(folder.rglob("*.rst.txt")) if folder.is_dir() else []
        if not files:
            raise InputError(
                f"The Python documentation sources are not in {folder}. Install Debian's python3.11-doc package "
                "(make setup does), set STEERSCOPE_PYTHON_DOCS to a _sources folder, or train on pydoc-topics."
            )
        documents = tuple(path.read_text(encoding="utf-8", errors="replace") for path in files)
        return Corpus(name, documents, f"Debian python3.11-doc, {folder}", "PSF License 2.0")
    raise InputError(f"Unknown training text {name!r}; choose one of {', '.join(CORPORA)}.")
