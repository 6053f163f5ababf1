"""Privacy helpers at the edges: keyed pseudonyms for identifiers, and masked log lines.

Not part of a cycle's data path — the monitor never stores a per-applicant row (only counts
and metrics; see ``docs/PRIVACY.md``). These serve the original spec's ``anonymize_data``
for anyone who exports decisions. Masking of free text lives in
:mod:`fairlens_monitor.security.masking` (re-exported here).

Pseudonyms are HMAC-SHA256 under a secret *pepper* kept in the key folder (``pepper.key``,
0600, never in the database). A bare SHA-256 of an identifier is not a pseudonym: ids are
few and guessable (sequential application numbers), so hashing every candidate reverses it;
without the pepper that enumeration finds nothing (``tests/test_privacy.py`` shows both).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fairlens_monitor.errors import DataError, KeyFileError
from fairlens_monitor.security.crypto import KeyExistsError, create_key_file, read_private_file
from fairlens_monitor.security.masking import MaskingFilter, install_masking, mask

if TYPE_CHECKING:  # pandas is imported where it is used: the CLI installs the log filter
    import pandas as pd

__all__ = ["MaskingFilter", "anonymize_data", "install_masking", "load_pepper", "mask", "pseudonym"]

PEPPER_FILE = "pepper.key"
PEPPER_BYTES = 32


def pseudonym(value: object, pepper: bytes) -> str:
    """Return the keyed pseudonym (64 hex digits) of one identifier.

    Args:
        value: the identifier; its ``str()`` is what is keyed, so 17 and "17" agree.
        pepper: the secret key (at least 16 bytes).

    Raises:
        ValueError: the pepper is too short to be a secret.
    """
    if len(pepper) < 16:
        raise ValueError("the pepper must be at least 16 bytes of secret randomness")
    return hmac.new(pepper, _id_text(value).encode("utf-8"), hashlib.sha256).hexdigest()


def _id_text(value: object) -> str:
    """The text of an identifier; 17, 17.0 (a number column with gaps) and "17" agree."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    item = getattr(value, "item", None)  # numpy scalars
    return _id_text(item()) if callable(item) and not isinstance(value, str) else str(value)


def anonymize_data(
    df: pd.DataFrame, id_columns: Sequence[str] = ("application_id",), *, pepper: bytes
) -> pd.DataFrame:
    """Replace identifier columns with keyed pseudonyms (the original spec's function).

    Pure: the pepper comes in (load it with :func:`load_pepper`). Equal identifiers get equal
    pseudonyms, so joins still work; missing values stay missing.

    Args:
        df: the frame; it is not modified.
        id_columns: columns to pseudonymise.
        pepper: the secret key.

    Returns:
        A copy with each id column replaced by 64-hex-digit HMAC-SHA256 pseudonyms.

    Raises:
        DataError: an id column is missing.
        ValueError: the pepper is too short.
    """
    import pandas as pd

    out = df.copy()
    for column in id_columns:
        if column not in out.columns:
            raise DataError(
                f"no id column '{column}' to anonymise (the frame has {len(out.columns)} columns)",
                column=column,
            )
        values = out[column]
        out[column] = values.map(lambda v: None if pd.isna(v) else pseudonym(v, pepper))
    return out


def load_pepper(key_dir: Path, *, create: bool = True) -> bytes:
    """Load (or create, 0600 in a 0700 folder) the pepper in ``key_dir``.

    Raises:
        KeyFileError: missing (with ``create=False``), exposed to other users, or malformed.
    """
    path = key_dir / PEPPER_FILE
    if create and not path.exists():
        with contextlib.suppress(KeyExistsError):  # a concurrent start made it: use that one
            create_key_file(path, secrets.token_hex(PEPPER_BYTES).encode("ascii"))
    text = read_private_file(path)
    try:
        pepper = bytes.fromhex(text.decode("ascii"))
    except (UnicodeError, ValueError):
        raise KeyFileError(str(path), "is not a hex-encoded pepper") from None
    if len(pepper) < 16:
        raise KeyFileError(str(path), f"holds {len(pepper)} bytes; at least 16 are needed")
    return pepper
