"""Expected failures as :class:`~srilab.errors.SrilabError`: one place that names the file and the fix.

A user can hand srilab a binary file where text is expected, a truncated safetensors file, a config
without the fields a model needs, an output path that is a file, or ask for more memory than there is.
:func:`user_error` turns such an exception into a one-line :class:`SrilabError`; :func:`guarded` does it
around a block (``with guarded(path, "the study config"): ...``). The CLI applies :func:`user_error` to
anything that escapes a command, so none of them ends in a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from srilab.errors import SrilabError


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]


def user_error(err: BaseException, path: str | os.PathLike | None = None, what: str = "") -> SrilabError | None:
    """``err`` as a one-line :class:`SrilabError` if it is an expected failure (else None)."""
    if isinstance(err, SrilabError):
        return err
    where = f"{path}: " if path is not None else ""
    label = f"{what} " if what else ""
    if isinstance(err, UnicodeDecodeError):
        return SrilabError(f"{where}{label}is not UTF-8 text (a binary file?): point to the text file")
    try:
        from safetensors import SafetensorError
    except ImportError:  # pragma: no cover
        SafetensorError = ()  # noqa: N806
    if SafetensorError and isinstance(err, SafetensorError):
        return SrilabError(
            f"{where}{label}is not a readable safetensors file ({_first_line(err)}): the file is truncated or "
            "corrupt; restore it (or, for a run's trace shard, resume the run to regenerate it)"
        )
    if isinstance(err, ValueError) and "embedded null" in str(err):  # a path with a NUL character
        return SrilabError(f"{where}{label}a path holds a NUL character (\\x00): remove it")
    if isinstance(err, MemoryError):
        return SrilabError(f"{where}{label}needs more memory than is available: use smaller lengths or inputs")
    if isinstance(err, NotADirectoryError):
        return SrilabError(f"{err.filename or path}: a file is in the way of a directory: choose another path")
    if isinstance(err, IsADirectoryError):
        return SrilabError(f"{err.filename or path}: is a directory where a file is expected")
    if isinstance(err, PermissionError):
        return SrilabError(f"{err.filename or path}: permission denied: choose a path you can write")
    if isinstance(err, FileNotFoundError):
        return SrilabError(f"{err.filename or path}: no such file")
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        name = err.filename or path
        return SrilabError(f"no space left on the device{f' while writing {name}' if name else ''}: free some "
                           "space and run the command again (a run continues with `srilab run --resume DIR`)")
    if isinstance(err, OSError) and err.errno is not None:
        return SrilabError(f"{where}{label}{_first_line(err)}")
    return None


@contextlib.contextmanager
def guarded(path: str | os.PathLike | None = None, what: str = "") -> Iterator[None]:
    """Run a block; an expected failure (see :func:`user_error`) leaves it as a one-line SrilabError."""
    try:
        yield
    except SrilabError:
        raise
    except Exception as err:  # noqa: BLE001 - only the expected ones are converted, the rest re-raised
        converted = user_error(err, path, what)
        if converted is None:
            raise
        raise converted from None


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot be used on this machine (``cpu``, ``cuda[:N]``, ``mps``), or None."""
    import torch

    base, _, index = device.partition(":")
    if base not in ("cpu", "cuda", "mps") or (index and not index.isdigit()):
        return f"unknown device {device!r}: use cpu, cuda, cuda:N or mps"
    if base == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            return f"device {device!r}: no CUDA GPU is available here: use device cpu"
        if index and int(index) >= n:
            return f"device {device!r}: there are only {n} CUDA device(s) here"
    if base == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        return f"device {device!r}: MPS is not available here: use device cpu"
    return None


def read_text(path: str | os.PathLike, what: str = "file", *, max_bytes: int | None = None) -> str:
    """A UTF-8 text file, with every expected failure (missing, binary, too large) one SrilabError."""
    p = Path(path)
    if not p.is_file():
        raise SrilabError(f"{what} {p} does not exist" if not p.exists() else f"{what} {p} is not a file")
    with guarded(p, what):
        if max_bytes is not None and p.stat().st_size > max_bytes:
            raise SrilabError(f"{p}: {what} is larger than {max_bytes} bytes: is it the right file?")
        return p.read_text(encoding="utf-8")


__all__ = ["device_problem", "guarded", "read_text", "user_error"]
