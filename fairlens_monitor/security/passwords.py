"""Database passwords out of every text a person sees: the one home for showing a URL.

Sits at the edge of every step that names a database (config, store, CLI, daemon, page):
``shown_url`` renders a URL with its password hidden (SQLAlchemy's
``render_as_string(hide_password=True)``), and ``scrub`` removes passwords from free text
such as a driver's exception message, which may embed the connection string. Both are pure
apart from reading the two URL environment variables, whose passwords are always scrubbed.
SQLAlchemy's URL parser is imported only when there is a URL to parse, so a command that
names no database (``measure``) never loads SQLAlchemy.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

HIDDEN = "***"
URL_ENV_VARS = ("FAIRLENS_DB_URL", "FAIRLENS_SOURCE_URL")
# scheme://user:password@host — the password of any URL-shaped text, known or not
_URL_USERINFO = re.compile(r"(\b[A-Za-z][\w+.-]*://[^\s:/@]*:)[^\s/@]+@")
# libpq key=value connection strings: password=secret or password='se cret'
_KEYWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def shown_url(url: str) -> str:
    """Return ``url`` as it may be shown: with its password replaced by ``***``.

    Args:
        url: a SQLAlchemy URL, or any other text naming a database (a file path).

    Returns:
        The URL rendered with the password hidden; text that is not a URL, scrubbed.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return scrub(url)


def url_passwords(urls: Iterable[str | None]) -> set[str]:
    """Return the passwords of the given URLs (text that is not a URL gives none)."""
    found: set[str] = set()
    for url in urls:
        if not url:
            continue
        from sqlalchemy.engine import make_url  # only with a URL to parse
        from sqlalchemy.exc import ArgumentError

        try:
            password = make_url(url).password
        except (ArgumentError, ValueError, TypeError):
            continue
        if password:
            found.add(str(password))
    return found


def scrub(text: str, *urls: str | None) -> str:
    """Remove database passwords from ``text``.

    Removed: the password of each of ``urls`` and of ``FAIRLENS_DB_URL`` and
    ``FAIRLENS_SOURCE_URL`` (as written and percent-encoded), the password part of anything
    shaped like ``scheme://user:password@``, and ``password=...`` of a libpq connection
    string.

    Args:
        text: the text to show (an error message, a log line).
        urls: URLs whose passwords must not appear.

    Returns:
        The text with every such password replaced by ``***``.
    """
    known = url_passwords([*urls, *(os.environ.get(name) for name in URL_ENV_VARS)])
    forms = {form for pw in known for form in (pw, quote(pw, safe=""), quote_plus(pw))}
    for form in sorted(forms, key=len, reverse=True):  # longest first: no partial leftovers
        text = text.replace(form, HIDDEN)
    text = _URL_USERINFO.sub(rf"\g<1>{HIDDEN}@", text)
    return _KEYWORD.sub(rf"\g<1>{HIDDEN}", text)


class PasswordFilter(logging.Filter):
    """A logging filter that scrubs database passwords from every record (``scrub``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the record's message and traceback text in place; never drops a record."""
        record.msg, record.args = scrub(record.getMessage()), None
        if record.exc_info:
            record.exc_text = scrub(
                record.exc_text or logging.Formatter().formatException(record.exc_info)
            )
        return True


def install_password_filter(logger: logging.Logger | None = None) -> None:
    """Add ``PasswordFilter`` to every handler of ``logger`` (default: the root logger)."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(PasswordFilter())
