"""RFC 8785 canonical JSON, fast: the standard library's C encoder where it writes the same bytes.

simulate → measure → detect → alert → **log**. Every audit event's hashed bytes are the
RFC 8785 text of its fields (``chain.canonical_bytes``). The ``rfc8785`` package defines
that text but writes it in Python, value by value, which cost more than the rest of a
cycle's audit record. For the values events hold, the C encoder of :mod:`json` (keys
sorted, no whitespace, non-ASCII written as itself) writes exactly the same bytes:

- ``null``, ``true``, ``false``, strings (both escape ``"``, ``\\``, and control characters
  the same way, ``\\u00XX`` in lower case) and integers within ±(2**53 − 1);
- a float that is a whole number below 1e16 in magnitude is written as that integer
  (RFC 8785 writes ``1.0`` as ``1``; so does ``json`` once it is an ``int``); any other
  float from 1e-4 to 1e16 in magnitude as Python's shortest round-trip ``repr``, which is
  what ECMAScript's Number-to-String gives in that range;
- objects whose keys are ASCII (sorting by code point is then sorting by UTF-16 unit).

:func:`jcs_bytes` checks every value against that list as it converts. A finite float outside
it (``1e-05``, which ECMAScript writes ``0.00001``; p-values are often that small) is
written by ``rfc8785`` alone and put in the C encoder's output in place of a placeholder
string holding a random 128-bit nonce drawn for that call (which no payload can hold).
Anything else (a non-ASCII key, a subclass, NaN, a lone surrogate, an unknown type) is
handed whole to ``rfc8785.dumps``, which writes it or raises exactly as before. The tests
hold the two equal on generated values of every kind.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import rfc8785

_INT_LIMIT = 2**53 - 1
_ENCODE = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


class _Unsure(Exception):
    """A value outside what the C encoder is known to write as RFC 8785 does."""


def jcs_bytes(value: Any) -> bytes:
    """Return the RFC 8785 canonical JSON of ``value`` (as ``rfc8785.dumps`` would).

    Args:
        value: JSON-like data (dicts with string keys, lists, tuples, strings, numbers,
            booleans, None).

    Returns:
        The canonical UTF-8 bytes.

    Raises:
        rfc8785.CanonicalizationError: ``value`` holds something RFC 8785 cannot express.
    """
    floats: list[str] = []
    nonce = secrets.token_hex(16)
    try:
        text = _ENCODE(_plain(value, floats, nonce))
    except _Unsure:
        return rfc8785.dumps(value)
    for n, number in enumerate(floats):
        text = text.replace(f'"{nonce}{n}"', number, 1)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: rfc8785 says so in its own words
        return rfc8785.dumps(value)


def _plain(v: Any, floats: list[str], nonce: str) -> Any:
    """``v`` with whole floats as ints and other hard floats as placeholders (their RFC 8785
    text appended to ``floats``); raises :class:`_Unsure` on anything unsure."""
    kind = v.__class__
    if kind is str or v is None or kind is bool:
        return v
    if kind is int:
        if -_INT_LIMIT <= v <= _INT_LIMIT:
            return v
        raise _Unsure
    if kind is float:
        magnitude = abs(v)
        if magnitude < 1e16:
            if v == int(v):  # NaN fails the range test above, so int() is safe here
                return int(v)
            if magnitude >= 1e-4:
                return v
        if magnitude - magnitude != 0.0:  # NaN or infinity
            raise _Unsure
        # a finite float ECMAScript writes otherwise than repr (1e-05 is 0.00001): its text
        # from rfc8785 itself, put in place of a placeholder no payload can hold
        floats.append(rfc8785.dumps(v).decode("ascii"))
        return f"{nonce}{len(floats) - 1}"
    if kind is dict:
        out = {}
        for key, item in v.items():
            if key.__class__ is not str or not key.isascii():
                raise _Unsure
            out[key] = _plain(item, floats, nonce)
        return out
    if kind is list or kind is tuple:
        return [_plain(item, floats, nonce) for item in v]
    raise _Unsure
