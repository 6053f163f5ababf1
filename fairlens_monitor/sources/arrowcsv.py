"""A CSV's needed columns read by pyarrow's multithreaded streaming reader, as text.

read → counts → measure → detect → alert → log. The ``measure`` command's fast reader: the
same cells as the pandas reader of :class:`fairlens_monitor.sources.files.FileChunks` (every
cell as text exactly as written, an empty cell ``""``, no type or missing-value guessing),
parsed on every core and handed on in frames of exactly ``chunk_rows`` rows, so what a chunk
holds — and the rows an error names — do not change. Columns of few distinct values are
dictionary-encoded by the parser itself (categoricals whose codes are the factorization);
the others are pandas strings backed by Arrow (no Python object per cell);
:mod:`fairlens_monitor.fairness.cells` turns either into labels per distinct value.

pyarrow is stricter than pandas' reader: a row with too few fields, a non-UTF-8 byte, or a
column name pandas would de-duplicate (``a.1``) make it refuse the file. It then raises
:class:`FastReadRefused` and the caller reads the file again with pandas, so a file either
gives exactly the pandas reader's counts or its errors; no message of pyarrow's (which quotes
the offending row) reaches the user.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from fairlens_monitor.fairness.metrics import require_columns
from fairlens_monitor.sources.csvhead import (  # re-exported: this reader's errors and kind
    FastReadRefused as FastReadRefused,
)
from fairlens_monitor.sources.csvhead import convert_options
from fairlens_monitor.sources.csvhead import readable as readable
from fairlens_monitor.sources.files import check_header

if TYPE_CHECKING:
    import pyarrow as pa

BLOCK_BYTES = 1 << 20  # pyarrow's default: ~210 MB peak at 10M rows (4 MB blocks: ~340 MB)


def check_columns(path: Path, columns: list[str]) -> None:
    """Check a CSV's header exactly as the pandas reader does: its size, and every column.

    Raises:
        DataError: the header is too long or wide, or lacks a needed column.
        OSError, ValueError, pandas.errors.ParserError: the header cannot be read.
    """
    check_header(path)
    require_columns(pd.read_csv(path, nrows=0).columns, columns, where=f"file {path.name}")


def arrow_chunks(
    path: Path, columns: list[str], chunk_rows: int, coded: Collection[str] = ()
) -> Iterator[pd.DataFrame]:
    """Yield ``columns`` of the CSV at ``path`` in frames of ``chunk_rows`` rows, as text.

    The header is checked first exactly as the pandas reader does (its size, and every
    needed column present), so those errors are the same.

    Args:
        path: an uncompressed CSV with a header row.
        columns: the columns to read.
        chunk_rows: rows per frame (the last may be shorter; none for a header-only file).
        coded: columns of few distinct values (groups, decisions): pyarrow's parser
            dictionary-encodes them as it converts, on every core, and they arrive as
            categoricals of the same texts, already factorized.

    Yields:
        Frames with one column per needed column: a categorical of strings if ``coded``,
        else Arrow-backed strings.

    Raises:
        DataError: the header is too long or wide, or lacks a needed column.
        OSError, ValueError, pandas.errors.ParserError: the header cannot be read.
        FastReadRefused: pyarrow refused the body (read it with pandas instead).
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    check_columns(path, columns)
    text = pd.StringDtype("pyarrow")
    try:
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(use_threads=True, block_size=BLOCK_BYTES),
            parse_options=pcsv.ParseOptions(newlines_in_values=True),
            convert_options=convert_options(columns, coded),
        )
        schema = reader.schema
        pending: list[pa.RecordBatch] = []
        held = 0
        for batch in reader:
            pending.append(batch)
            held += batch.num_rows
            while held >= chunk_rows:
                table = pa.Table.from_batches(pending, schema=schema)
                yield _frame(table.slice(0, chunk_rows), text)
                rest = table.slice(chunk_rows)
                pending, held = rest.to_batches(), rest.num_rows
        if held:
            yield _frame(pa.Table.from_batches(pending, schema=schema), text)
    except pa.ArrowException:
        raise FastReadRefused from None


def _frame(table: pa.Table, text: pd.StringDtype) -> pd.DataFrame:
    """One chunk as a pandas frame: strings Arrow-backed (no object per cell), dictionaries
    as categoricals (their batches' dictionaries unified)."""
    import pyarrow as pa

    frame: pd.DataFrame = table.to_pandas(types_mapper={pa.string(): text}.get)
    return frame
