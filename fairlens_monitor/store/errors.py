"""The store's error: the database cannot be opened, migrated, copied or written.

Raised by the store and the operations on it (backup, restore, copy); the CLI maps it to
exit 2 like every :class:`~fairlens_monitor.errors.FairlensError`. Its message shows the
database URL with the password hidden and the problem scrubbed of it, which is why it lives
here and not in :mod:`fairlens_monitor.errors` (that bottom layer imports nothing).
"""

from __future__ import annotations

from fairlens_monitor.errors import FairlensError
from fairlens_monitor.security.passwords import scrub, shown_url


class StoreError(FairlensError):
    """The database cannot be opened, migrated or written (the message never shows its
    password: the URL is shown with the password hidden, the problem scrubbed of it)."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        super().__init__(f"database {shown_url(url)}: {scrub(problem, url)}")
