"""What measure's CSV readers share before and around the rows: file kind, header, options.

read → **counts** → measure → detect → alert → log. Whether pyarrow's reader applies at all
(:func:`readable`: a plain CSV, not Parquet or compressed), the limits of a header line
(:func:`check_header_line`, also the daemon's file source's), a plain header's names read
without pandas (:func:`plain_header`), the conversion options that make pyarrow give the
pandas reader's text (:func:`convert_options`), what a refusal raises
(:class:`FastReadRefused`), and a dictionary column's codes (:func:`dictionary_codes`).

Imports neither pandas nor anything that does (pyarrow's ``Array.to_numpy`` would: the
codes are read from the array's buffer), so ``measure`` can count a plain CSV without it.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from fairlens_monitor.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

PARQUET_SUFFIXES = (".parquet", ".pq")
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")  # read as pandas infers them
MAX_HEADER_BYTES = 1 << 20  # a decision file's header line may not be longer…
MAX_COLUMNS = 10_000  # …nor have more columns
UTF8_BOM = b"\xef\xbb\xbf"


class FastReadRefused(Exception):
    """pyarrow could not read the file as the pandas reader would; read it with pandas."""


def readable(path: Path) -> bool:
    """Whether pyarrow's CSV reader applies: a plain (uncompressed) CSV, not Parquet."""
    name = path.name.lower()
    return not name.endswith((*PARQUET_SUFFIXES, *COMPRESSED_SUFFIXES))


def check_header_line(line: bytes, name: str) -> None:
    """Refuse a header line over ``MAX_HEADER_BYTES`` or ``MAX_COLUMNS`` columns.

    Columns are counted by their commas (a quoted comma in a name counts too).

    Args:
        line: the file's first line as read, at most ``MAX_HEADER_BYTES`` + 1 bytes of it.
        name: the file's name, for the message.

    Raises:
        DataError: over either bound (naming the file and the bound, not the header).
    """
    if len(line) > MAX_HEADER_BYTES:
        raise DataError(
            f"file {name}: its first line (the header) is longer than "
            f"{MAX_HEADER_BYTES:,} bytes, the limit for a decision file's header; "
            "is it the right file, with a header row?"
        )
    columns = line.count(b",") + 1
    if columns > MAX_COLUMNS:
        raise DataError(
            f"file {name}: its header has {columns:,} columns, more than the "
            f"{MAX_COLUMNS:,} a decision file may have; export only the columns "
            "the monitor reads"
        )


def plain_header(path: Path) -> list[str] | None:
    """The column names of a plain header line, read without pandas, or None.

    A header is plain when its line is UTF-8 text ending in a line feed, without a quote,
    a carriage return before its end, a blank name or a name twice: then the pandas reader
    (which :func:`fairlens_monitor.sources.arrowcsv.check_columns` uses) gives exactly these
    names, split at the commas, spaces kept, a UTF-8 byte order mark removed. Otherwise None:
    the caller checks the header with pandas, whose names and errors are the reference.

    Raises:
        DataError: the line is over ``MAX_HEADER_BYTES`` or ``MAX_COLUMNS`` columns.
        OSError: the file cannot be read.
    """
    with open(path, "rb") as f:
        line = f.readline(MAX_HEADER_BYTES + 1)
    check_header_line(line, path.name)
    if line.startswith(UTF8_BOM):
        line = line[len(UTF8_BOM) :]
    text = line[:-2] if line.endswith(b"\r\n") else line[:-1]
    if not line.endswith(b"\n") or b'"' in text or b"\r" in text:
        return None
    try:
        names = text.decode("utf-8").split(",")
    except UnicodeDecodeError:
        return None
    if any(not n.strip() for n in names) or len(set(names)) != len(names):
        return None  # pandas names an empty column, skips a blank line, mangles a twin
    return names


def convert_options(
    columns: list[str], coded: Collection[str] = (), binary: Collection[str] = ()
) -> pcsv.ConvertOptions:
    """pyarrow's options that read ``columns`` as the pandas reader's text: every cell as
    written (an empty cell ``""``, never NULL), ``coded`` ones dictionary-encoded.

    ``binary`` columns (a subset of ``coded``) are parsed as booleans from exactly ``1``
    and ``0`` — nothing else converts, not a blank, ``" 1"``, ``1.0`` or ``NA``: pyarrow
    refuses the batch instead (ArrowInvalid), so a true cell is always the text ``1`` and a
    false one ``0``. Cheaper than dictionary-encoding them (no hashing per cell).
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    def kind(column: str) -> pa.DataType:
        if column in binary:
            return pa.bool_()
        return pa.dictionary(pa.int32(), pa.string()) if column in coded else pa.string()

    return pcsv.ConvertOptions(
        include_columns=columns,
        column_types={c: kind(c) for c in columns},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        null_values=[],
        true_values=["1"],
        false_values=["0"],
    )


def dictionary_codes(array: pa.DictionaryArray) -> tuple[list[str], np.ndarray]:
    """A dictionary column without nulls as ``(its texts, each row's index into them)``.

    The indices are a view of the array's own buffer (``Array.to_numpy`` would import pandas).

    Raises:
        ValueError: the column has nulls (the reader's options never give them).
    """
    import numpy as np

    if array.null_count:
        raise ValueError("a dictionary column with nulls has no index for them")
    width = array.indices.type.bit_width // 8
    kind = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}[width]
    start = array.offset
    indices = np.frombuffer(array.indices.buffers()[1], dtype=kind)[start : start + len(array)]
    return array.dictionary.to_pylist(), indices
