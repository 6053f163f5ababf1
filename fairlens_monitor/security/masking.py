"""Masking personal data in free text, and describing data values without quoting them.

Used at every edge where text leaves the process or enters the permanent record: the log
filter (:class:`MaskingFilter`), the CLI's ``error:`` lines, the daemon's console lines and
the store's free-text column ``runs.error`` (with the ``cycle_failed`` event that repeats
it). Error messages about data use :func:`value_forms` instead of the values themselves.
Pure (``re`` and ``logging`` only), so the fairness core may import it.

What is masked: e-mail addresses, SSN-like numbers (``123-45-6789``, ``123 45 6789``,
``123456789``), payment-card numbers (13–19 digits, bare or in groups of four, that pass
the Luhn check — an ordinary long number such as a seed fails it nine times in ten),
phone numbers (international, North American, national with a leading 0) and
``application id``/``applicant id`` values. A match must stand alone: digits inside a
word, a hex digest, a decimal number or a time (``0:00:00.200000``) are left as they are.
Structured output (``--json``, tables) is never passed through :func:`mask`: seeds, ids,
counts, digests and timestamps there stay exact.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

from fairlens_monitor.security.passwords import install_password_filter

# A number standing alone: not part of a word or hex digest, a decimal, a signed number.
_ALONE = r"(?<![\w.+-])"
_END = r"(?![\w+]|[.-]\d)"
_CARD = re.compile(
    _ALONE + r"(?:\d{13,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}"
    r"|\d{4}([ -])\d{6}\2\d{4,5})" + _END
)
_SSN = re.compile(_ALONE + r"(?!000|666)\d{3}([- ]?)(?!00)\d{2}\1(?!0000)\d{4}" + _END)
MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (
        re.compile(
            r"(?i)\b(application[_ ]?id|applicant[_ ]?id|app[_ ]?id)\b(\s*[=:#]?\s*)"
            r"[\w-]+"
        ),
        r"\1\2[id]",
    ),
    (_SSN, "[ssn]"),
    # Phone numbers: international (+CC ...), North American (555-123-4567, (555) 123-4567),
    # and national with a leading 0 (030 1234 5678). Dates, times and durations do not fit
    # these shapes (a time's parts follow a digit and ':', a fraction a '.').
    (re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,4}(?![\w-])"), "[phone]"),
    (re.compile(r"(?<!\w)(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-]|[.:]\d)"), "[phone]"),
    (
        re.compile(r"(?<![\w.-])(?<!\d:)0\d{1,4}[ /.-]\d{3,4}[ .-]?\d{3,5}(?![\w-]|[.:]\d)"),
        "[phone]",
    ),
)
_FORM_CHARS = 12
_QUOTED = re.compile(r"""(["'])(.*?)\1""")


def luhn_valid(digits: str) -> bool:
    """Return whether a string of decimal digits passes the Luhn check (payment cards)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[card]" if 13 <= len(digits) <= 19 and luhn_valid(digits) else match.group()


def mask(text: str) -> str:
    """Mask e-mails, SSN-like and card numbers, phone numbers and application ids.

    Args:
        text: free text (a log message, an error message).

    Returns:
        The text with each match replaced by ``[email]``, ``[card]``, ``[ssn]``, ``[phone]``
        or ``<key> [id]``; everything else unchanged.
    """
    text = MASKS[0][0].sub(MASKS[0][1], text)
    text = _CARD.sub(_card, text)
    for pattern, replacement in MASKS[1:]:
        text = pattern.sub(replacement, text)
    return text


def looks_personal(text: str) -> bool:
    """Return whether ``text`` holds something :func:`mask` would mask."""
    return mask(text) != text


def quoted_redacted(message: str, names: Iterable[str] = ()) -> str:
    """The first line of a library's error message, each quoted text replaced by ``'…'``
    unless it is one of ``names`` (configured columns, a table, an encoding).

    A database driver or a file parser quotes the value it could not convert (``invalid
    input syntax for type integer: "…"``), and that value is a cell of the lender's data.
    """
    keep = set(names)
    first = (message.splitlines() or [""])[0]
    return _QUOTED.sub(
        lambda m: m.group() if m.group(2) in keep else f"{m.group(1)}…{m.group(1)}", first
    )


def value_form(value: Any) -> str:
    """The form of one data value, its content hidden: letters as ``a``/``A``, digits as
    ``9``, ASCII punctuation and spaces kept, anything else as ``?``; cut at 12 characters.

    ``'2'`` → ``'9'``, ``'maybe'`` → ``'aaaaa'``, ``'john.doe@example.com'`` →
    ``'aaaa.aaa@aaa…'``.
    """
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and not isinstance(value, str | bytes):
        value = item()
    text = value if isinstance(value, str) else str(value)
    out = []
    for ch in text[:_FORM_CHARS]:
        if ch.isdigit() and ch.isascii():
            out.append("9")
        elif ch.isalpha():
            out.append("A" if ch.isupper() else "a")
        elif ch.isascii() and (ch.isspace() or not ch.isalnum()) and ch.isprintable():
            out.append(ch)
        else:
            out.append("?")
    return "'" + "".join(out) + ("…" if len(text) > _FORM_CHARS else "") + "'"


def value_forms(values: Iterable[Any], limit: int = 5) -> str:
    """Up to ``limit`` distinct forms (:func:`value_form`) of data values for an error
    message, with the legend: e.g. ``'9', 'aaaaa' [a letter, 9 digit]``."""
    forms = list(dict.fromkeys(value_form(v) for v in values))[:limit]
    return ", ".join(forms) + " [a letter, 9 digit]"


class MaskingFilter(logging.Filter):
    """A logging filter that masks personal data in every record's final message.

    The message is formatted once (``record.getMessage()``), masked, and stored back with no
    arguments, so nothing unmasked reaches any handler.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record in place; never drops a record."""
        message = mask(record.getMessage())
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        record.msg, record.args = message, None
        return True


def install_masking(logger: logging.Logger | None = None) -> MaskingFilter:
    """Add the masking filter to every handler of ``logger`` (default: the root logger).

    Returns:
        The filter (already installed).
    """
    target = logger or logging.getLogger()
    masking = MaskingFilter()
    for handler in target.handlers:
        handler.addFilter(masking)
    return masking


def configure_logging(level: int | str, *, process: str = "") -> None:
    """Send this process's log lines to stderr in the project's one format, with personal
    data masked (:class:`MaskingFilter`) and database passwords scrubbed
    (``passwords.PasswordFilter``) on every line.

    Args:
        level: the root logger's level (``"INFO"``, ``logging.WARNING`` …).
        process: a name shown after the logger's (e.g. ``"chain walk"`` for a child
            process), empty for the command itself.
    """
    tag = f" ({process})" if process else ""
    logging.basicConfig(
        stream=sys.stderr,
        level=level,
        format=f"%(asctime)s %(levelname)s %(name)s{tag}: %(message)s",
    )
    install_masking()  # e-mails, phone numbers, SSN-like numbers and application ids
    install_password_filter()  # database passwords a driver's message may carry
