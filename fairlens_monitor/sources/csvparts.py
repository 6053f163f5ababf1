"""A CSV's needed columns parsed in parallel by byte ranges, as dictionary-coded Arrow batches.

read → **counts** → measure → detect → alert → log. The ``measure`` command's fastest
reader: a count needs no row order, so the file is cut into one byte range per core, each
parsed by its own pyarrow streaming reader in its own thread (pyarrow's streaming reader
parses on the calling thread only), and every batch is handed to a reducer in that thread
— no frame is built, no batches are gathered, memory stays a few blocks per thread.

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

This module imports neither pandas nor anything that does (``pyarrow.array`` of a list
would: the boolean columns are made from their buffers instead), so ``measure`` parses a
plain CSV without loading pandas; the options, the header and a coded column's codes are
:mod:`.csvhead`'s.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from fairlens_monitor.sources.csvhead import MAX_HEADER_BYTES, convert_options
from fairlens_monitor.sources.csvhead import (  # re-exported: what measure's readers share
    FastReadRefused as FastReadRefused,
)

if TYPE_CHECKING:
    import pyarrow as pa

S = TypeVar("S")
BLOCK_BYTES = 2 << 20  # per range and block: ~55k rows of a typical decision log a batch
MIN_PART_BYTES = 8 << 20  # smaller files are one range: threads would cost more than they save
MAX_PARTS = 4  # each range holds ~15 MB more (its blocks, parser, allocator arena)
AHEAD = 4  # blocks a range reads ahead of its parser
AHEAD_WAIT = 0.05  # seconds a read waits for the parser (a block may give no batch)
CUT_SEARCH = 1 << 16  # a cut looks this far ahead for the end of a line, else it is dropped
SNIFF_BYTES = 1 << 16  # the head of the file that decides which coded columns are 0/1
BINARY_TEXTS = ("0", "1")  # a boolean column's dictionary: false is index 0, true index 1


class _Range:
    """Bytes ``[start, end)`` of a file as a read-only stream for pyarrow, watching for ``"``.

    A quote makes the cut unsafe: the stream then ends early and ``quoted`` is set, so the
    caller discards this parse and reads the whole file as one range.

    pyarrow's streaming reader reads up to 32 blocks ahead of its parser on a background
    thread (32 MB per range at 1 MB blocks); here a block is read only when fewer than
    ``AHEAD`` are waiting — the range's thread calls :meth:`parsed` after each batch — so a
    range usually holds a few blocks whatever the core count. A block that gives no batch
    (only blank lines) cannot stall it: after ``AHEAD_WAIT`` seconds the read goes ahead
    anyway, so a parser starved of CPU for longer (a loaded machine) lets the read-ahead
    grow back towards pyarrow's own 32 blocks, never beyond.
    """

    closed = False

    def __init__(
        self, path: Path, start: int, end: int, quoted: threading.Event, stop: threading.Event
    ) -> None:
        self._file: BinaryIO = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by close)
        self._file.seek(start)
        self._left = end - start
        self._quoted = quoted
        self._stop = stop  # another range failed, or the caller was interrupted: end now
        self._ahead = threading.Semaphore(AHEAD)

    def parsed(self) -> None:
        """One more batch parsed: one more block may be read."""
        self._ahead.release()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes of the range (all that is left when ``size`` is -1)."""
        want = self._left if size is None or size < 0 else min(size, self._left)
        if want <= 0 or self._quoted.is_set() or self._stop.is_set():
            return b""
        self._ahead.acquire(timeout=AHEAD_WAIT)
        data = self._file.read(want)
        if b'"' in data:
            self._quoted.set()
            return b""
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._file.close()
        self.closed = True


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
    """``batch`` with its boolean columns as dictionary columns of the texts ``0`` and ``1``.

    A true cell's index is its bit: the bitmap is unpacked by numpy (a cast kernel and a
    dictionary built per batch cost twice as much, per batch on every reading thread). The
    arrays are made from their buffers: ``pyarrow.array`` of a list or a numpy array would
    import pandas, which ``measure`` does not load for a plain CSV.
    """
    if not binary:
        return batch
    import numpy as np
    import pyarrow as pa

    arrays = []
    for name, array in zip(batch.schema.names, batch.columns, strict=True):
        if name in binary:
            bitmap = np.frombuffer(array.buffers()[1], dtype=np.uint8)
            bits = np.unpackbits(bitmap, count=array.offset + len(array), bitorder="little")
            indices = pa.Array.from_buffers(
                pa.int8(), len(array), [None, pa.py_buffer(bits[array.offset :].view(np.int8))]
            )
            array = pa.DictionaryArray.from_arrays(indices, _binary_texts())
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


@functools.cache
def _binary_texts() -> pa.Array:
    """The dictionary of a boolean column: ``["0", "1"]`` (made once; Arrow arrays are
    immutable, so every reading thread may share it)."""
    import numpy as np
    import pyarrow as pa

    offsets = pa.py_buffer(np.array([0, 1, 2], dtype=np.int32))
    return pa.Array.from_buffers(pa.string(), 2, [None, offsets, pa.py_buffer(b"01")])


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
    stop = threading.Event()  # a range failed or Ctrl-C: the others end at their next block

    def run(index: int) -> S:
        state = start()
        stream = _Range(path, starts[index], ends[index], quoted, stop)
        try:
            reader = pcsv.open_csv(
                stream,
                read_options=pcsv.ReadOptions(
                    use_threads=False,
                    block_size=BLOCK_BYTES,
                    column_names=None if index == 0 else names,
                ),
                parse_options=pcsv.ParseOptions(newlines_in_values=True),
                convert_options=convert_options(columns, coded, binary),
            )
            for batch in reader:
                if stop.is_set() or quoted.is_set():
                    break
                step(state, _as_coded(batch, binary))
                stream.parsed()
        except pa.ArrowException:
            if not (quoted.is_set() or stop.is_set()):  # not ended early mid-row by us
                stop.set()
                raise FastReadRefused from None
        except BaseException:
            stop.set()
            raise
        finally:
            stream.close()
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
