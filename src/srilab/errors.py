"""User-facing errors.

Every error a user can cause (a wrong path, a malformed config or data row, a model without the
expected layers, NaNs) is raised as a :class:`SrilabError` whose message is one line naming the problem
and the fix. The CLI prints that line and exits with code 2.
"""

from __future__ import annotations


class SrilabError(Exception):
    """An error caused by the user's input, with a one-line message that names the problem and the fix."""

    exit_code = 2

    def __init__(self, message: str):
        if "\n" in message:
            message = " ".join(part.strip() for part in message.splitlines() if part.strip())
        super().__init__(message)
