"""Output files checked before the work starts and written whole or not at all.

A batch that runs for an hour must not end in "No such file or directory" and lose every result.
:func:`check_output` tries each output path before anything runs — its folder exists, a file can be
made there, the name is not a folder — and :func:`write_atomically` writes a temporary file beside the
target, flushes it to disk and renames it over the target, so a failure part-way (a full disk, Ctrl-C,
a kill) leaves the old file or no file, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from interp.errors import InputError


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the folder is not writable"
    return exc.strerror or str(exc)


def check_output(path: Path, what: str = "output file") -> None:
    """Raise an :class:`InputError` now if ``path`` could not be written later.

    Args:
        path: Where the file will be written.
        what: What the file is, for the message ("results CSV (--out)").

    Example:
        ``check_output(Path("no/such/folder/results.csv"), "results CSV (--out)")`` raises "The folder
        no/such/folder for the results CSV (--out) does not exist: create it or choose another path."
    """
    if path.is_dir():
        raise InputError(f"The {what} {path} is a folder: give a file name, e.g. {path / 'results.csv'}.")
    folder = path.parent
    if not folder.is_dir():
        kind = "is a file, not a folder" if folder.exists() else "does not exist"
        raise InputError(f"The folder {folder} for the {what} {kind}: create it or choose another path.")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".check"):
            pass
    except OSError as exc:
        raise InputError(f"Cannot write the {what} in {folder}: {_reason(exc)}. Choose another folder.") from None


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` all at once: a temporary file in the same folder, synced, then renamed over ``path``.

    Raises:
        OSError: the write failed; ``path`` is as it was and no temporary file is left.
    """
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, path.stat().st_mode & 0o7777 if path.exists() else 0o644)  # mkstemp's 0o600 is for secrets
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_or_rescue(path: Path, data: bytes, what: str = "output file") -> Path:
    """Write ``data`` to ``path`` atomically; if that fails, to the temp folder, and say where it went.

    Returns:
        ``path``, when it was written there.

    Raises:
        InputError: ``path`` could not be written; the message says why and where the data was put instead
            (or that it could not be kept anywhere).
    """
    try:
        write_atomically(path, data)
        return path
    except OSError as exc:
        reason = _reason(exc)
    rescue = Path(tempfile.gettempdir()) / f"steerscope-{os.getpid()}-{path.name}"
    try:
        write_atomically(rescue, data)
    except OSError:
        raise InputError(f"Could not write the {what} {path}: {reason}; it could not be kept anywhere else either.") from None
    raise InputError(f"Could not write the {what} {path}: {reason}. It was written to {rescue} instead.")


def write_outputs(files: list[tuple[Path, bytes, str]]) -> None:
    """Write each ``(path, data, what)`` with :func:`write_or_rescue`; one failing does not stop the others.

    Raises:
        InputError: one or more could not be written where asked; the message says where each went instead.
    """
    problems = []
    for path, data, what in files:
        try:
            write_or_rescue(path, data, what)
        except InputError as exc:
            problems.append(str(exc))
    if problems:
        raise InputError(" ".join(problems))
