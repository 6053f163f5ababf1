"""A CSV's needed columns parsed in parallel by byte ranges, as dictionary-coded Arrow batches.

read → **counts** → measure → detect → alert → log. The ``measure`` command's fastest
reader: a count needs no row order, so the file is cut into one byte range per core, each
read in its own thread ``SEGMENT_BYTES`` at a time (cut after a line end), and each segment
parsed by one ``pyarrow.csv.read_csv`` call on that thread, which holds no GIL while it
parses (so Python work elsewhere in the process, e.g. an import, does not stall the
ranges); every batch is handed to a reducer in that thread — no frame is built, no batches
are gathered, memory stays about a segment and its columns per thread.

Cutting is only safe where a record ends. A range starts just after a ``\\n``, which ends a
record unless it is inside a quoted field; so the parallel read also checks every byte it
reads for a ``"``: a file with any quote is read again from the start as one range (one
reader over the whole file, quoted newlines and all), the reducers' work so far discarded.
The header is parsed once by pyarrow from the first line (a UTF-8 BOM stripped as usual) and
its names given to the other ranges. Every range is parsed with the same options as
:func:`fairlens_monitor.sources.arrowcsv.arrow_chunks` (each cell text as written, an empty
cell ``""``, the coded columns dictionary-encoded), so a range's cells are the whole file's.
pyarrow refusing any range (a short row, bad UTF-8, a duplicate name) raises
:class:`~fairlens_monitor.sources.arrowcsv.FastReadRefused`, as for the chunked reader.

A coded column whose cells in the file's first ``SNIFF_BYTES`` are all exactly ``0`` or
``1`` (a decision, a label) is parsed as booleans, which costs the parser less than
dictionary-encoding it, and handed on as a dictionary column all the same (the dictionary
``["0", "1"]``, a true cell's index 1): the reducer sees the texts as written either way.
Should a later cell be anything else (``yes``, a blank, ``1.0``), pyarrow refuses it and the
file is read again from the start with every coded column dictionary-encoded, the
reducers' work so far discarded.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from fairlens_monitor.sources.arrowcsv import FastReadRefused, convert_options
from fairlens_monitor.sources.files import MAX_HEADER_BYTES

if TYPE_CHECKING:
    import pyarrow as pa

S = TypeVar("S")
BLOCK_BYTES = 1 << 20  # per range and block: a batch of ~27k rows of a typical decision log
MIN_PART_BYTES = 8 << 20  # smaller files are one range: threads would cost more than they save
MAX_PARTS = 4  # each range holds ~30 MB more (its segment, parser, allocator arena)
SEGMENT_BYTES = 16 << 20  # read and parsed whole, in one call without the GIL (per range)
CUT_SEARCH = 1 << 16  # a cut looks this far ahead for the end of a line, else it is dropped
SNIFF_BYTES = 1 << 16  # the head of the file that decides which coded columns are 0/1
BINARY_TEXTS = ("0", "1")  # a boolean column's dictionary: false is index 0, true index 1


def _segments(
    path: Path, start: int, end: int, quoted: threading.Event, stop: threading.Event
) -> Iterator[memoryview]:
    """Bytes ``[start, end)`` of a file, ``SEGMENT_BYTES`` at a time, each cut after a ``\\n``.

    A segment is read whole, checked for ``"`` (a quote makes the cut unsafe: ``quoted`` is
    set and nothing more is given, so the caller discards this parse and reads the whole file
    as one range), and given up to its last line end; the partial line after it is read again
    at the start of the next segment. A line longer than a segment doubles the read until it
    ends. The last segment ends where the range ends. Stops when ``stop`` is set (another
    range failed, or the caller was interrupted).
    """
    with open(path, "rb", buffering=0) as f:
        pos = start
        size = SEGMENT_BYTES
        while pos < end and not (stop.is_set() or quoted.is_set()):
            f.seek(pos)
            data = f.read(min(size, end - pos))
            if not data:  # the file shrank under us: pyarrow would have failed the same way
                raise OSError(f"{path.name}: the file ended early while it was read")
            if b'"' in data:
                quoted.set()
                return
            if pos + len(data) < end:
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # no line end in the whole segment: read a longer one
                    size *= 2
                    continue
            else:
                cut = len(data)
            pos += cut
            size = SEGMENT_BYTES
            yield memoryview(data)[:cut]


def cuts(path: Path, parts: int, min_part_bytes: int = MIN_PART_BYTES) -> tuple[bytes, list[int]]:
    """Where to cut the file: its header line and the start offset of every range.

    Args:
        path: the CSV.
        parts: the most ranges wanted.
        min_part_bytes: no range is cut smaller than this (a small file is one range).

    Returns:
        ``(header line, starts)``; ``starts[0]`` is 0 and the last range ends at the file's
        end. One range when the header holds a ``"`` or no line end is found near a cut.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.readline(MAX_HEADER_BYTES + 1)
        body = f.tell()
        wanted = max(1, min(parts, (size - body) // max(min_part_bytes, 1)))
        if b'"' in header or not header.endswith(b"\n"):
            return header, [0]
        starts = [0]
        for i in range(1, wanted):
            pos = body + (size - body) * i // wanted
            f.seek(pos)
            line_end = f.read(CUT_SEARCH).find(b"\n")
            cut = pos + line_end + 1
            if line_end >= 0 and starts[-1] < cut < size:
                starts.append(cut)
    return header, starts


def reduce_parts(
    path: Path,
    columns: list[str],
    start: Callable[[], S],
    step: Callable[[S, pa.RecordBatch], None],
    *,
    coded: Collection[str] = (),
    parts: int | None = None,
    min_part_bytes: int | None = None,
) -> list[S]:
    """Parse ``columns`` of the CSV at ``path`` range by range and reduce each range's batches.

    Args:
        path: an uncompressed CSV with a header row (checked by the caller).
        columns: the columns to read.
        start: makes one range's reducer state (called again for a re-read from the start).
        step: adds one batch to a state; called in the range's own thread, one thread per
            state. An exception it raises stops the read and is raised here.
        coded: columns pyarrow dictionary-encodes as it parses (the others are strings).
        parts: the most ranges (default: the CPUs this process may run on, at most
            ``MAX_PARTS``).
        min_part_bytes: no range is cut smaller (default ``MIN_PART_BYTES``).

    Returns:
        One state per range read, in file order.

    Raises:
        FastReadRefused: pyarrow refused a range (read the file with pandas instead).
        OSError: the file cannot be read.
    """
    if parts is None:
        parts = min(MAX_PARTS, _cpus())
    header, starts = cuts(path, parts, MIN_PART_BYTES if min_part_bytes is None else min_part_bytes)
    binary = binary_columns(path, columns, coded)
    try:
        return _reduce(path, header, starts, columns, coded, binary, start, step)
    except FastReadRefused:
        if not binary:
            raise
    # a later cell of a 0/1-looking column is something else: read it as text after all
    return _reduce(path, header, starts, columns, coded, frozenset(), start, step)


def binary_columns(path: Path, columns: list[str], coded: Collection[str]) -> frozenset[str]:
    """The coded columns whose cells in the first ``SNIFF_BYTES`` of the file (whole lines
    only) are all exactly ``0`` or ``1``: worth parsing as booleans. None when that head
    cannot be parsed (the real read will say why) or has no rows."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if len(head) == SNIFF_BYTES:
        head = head[: head.rfind(b"\n") + 1]
    try:
        table = pcsv.read_csv(
            pa.py_buffer(head),
            read_options=pcsv.ReadOptions(use_threads=False),
            parse_options=pcsv.ParseOptions(newlines_in_values=True),
            convert_options=convert_options(columns, coded),
        )
    except pa.ArrowException:
        return frozenset()
    if table.num_rows == 0:
        return frozenset()
    return frozenset(
        column
        for column in coded
        if all(
            set(chunk.dictionary.to_pylist()) <= set(BINARY_TEXTS)
            for chunk in table.column(column).chunks
        )
    )


def _reduce(
    path: Path,
    header: bytes,
    starts: list[int],
    columns: list[str],
    coded: Collection[str],
    binary: frozenset[str],
    start: Callable[[], S],
    step: Callable[[S, pa.RecordBatch], None],
) -> list[S]:
    """The ranges in parallel, or the whole file as one range when any holds a quote."""
    if len(starts) > 1:
        quoted = threading.Event()
        states = _parallel(path, header, starts, columns, coded, binary, start, step, quoted)
        if not quoted.is_set():
            return states
    return [_serial(path, columns, coded, binary, start, step)]


def _as_coded(batch: pa.RecordBatch, binary: frozenset[str]) -> pa.RecordBatch:
    """``batch`` with its boolean columns as dictionary columns of the texts ``0`` and ``1``."""
    if not binary:
        return batch
    import pyarrow as pa

    texts = pa.array(BINARY_TEXTS, type=pa.string())
    arrays = [
        pa.DictionaryArray.from_arrays(array.cast(pa.int8()), texts) if name in binary else array
        for name, array in zip(batch.schema.names, batch.columns, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _cpus() -> int:
    """The CPUs this process may run on (all of them where the OS cannot say)."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; not on macOS
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def _serial(
    path: Path,
    columns: list[str],
    coded: Collection[str],
    binary: frozenset[str],
    start: Callable[[], S],
    step: Callable[[S, pa.RecordBatch], None],
) -> S:
    """The whole file as one range (quoted newlines allowed), parsed on every core."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    state = start()
    try:
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(use_threads=True, block_size=BLOCK_BYTES),
            parse_options=pcsv.ParseOptions(newlines_in_values=True),
            convert_options=convert_options(columns, coded, binary),
        )
        for batch in reader:
            step(state, _as_coded(batch, binary))
    except pa.ArrowException:
        raise FastReadRefused from None
    return state


def _parallel(
    path: Path,
    header: bytes,
    starts: list[int],
    columns: list[str],
    coded: Collection[str],
    binary: frozenset[str],
    start: Callable[[], S],
    step: Callable[[S, pa.RecordBatch], None],
    quoted: threading.Event,
) -> list[S]:
    """Each range in its own thread; when ``quoted`` ends up set, the states are worthless."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    try:
        names = pcsv.read_csv(pa.py_buffer(header)).column_names
    except pa.ArrowException:
        raise FastReadRefused from None
    size = path.stat().st_size
    ends = [*starts[1:], size]
    stop = threading.Event()  # a range failed or Ctrl-C: the others end at their next segment

    def run(index: int) -> S:
        state = start()
        options = {
            "parse_options": pcsv.ParseOptions(newlines_in_values=True),
            "convert_options": convert_options(columns, coded, binary),
        }
        given = None if index == 0 else names  # the first range's first segment has the header
        try:
            for segment in _segments(path, starts[index], ends[index], quoted, stop):
                table = pcsv.read_csv(  # parses with the GIL released: the other ranges run
                    pa.py_buffer(segment),
                    read_options=pcsv.ReadOptions(
                        use_threads=False, block_size=BLOCK_BYTES, column_names=given
                    ),
                    **options,
                )
                given = names
                for batch in table.to_batches():
                    if stop.is_set() or quoted.is_set():
                        break
                    step(state, _as_coded(batch, binary))
        except pa.ArrowException:
            if not (quoted.is_set() or stop.is_set()):  # not ended early by us
                stop.set()
                raise FastReadRefused from None
        except BaseException:
            stop.set()
            raise
        return state

    pool = ThreadPoolExecutor(len(starts))
    try:
        futures = [pool.submit(run, i) for i in range(len(starts))]
        errors = [f.exception() for f in futures]
    except BaseException:  # e.g. KeyboardInterrupt: do not parse the rest of a huge file
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True)
    if quoted.is_set():  # a cut may have split a quoted field: nothing here is worth keeping
        return []
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]
