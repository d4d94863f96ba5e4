"""Parsing chunks of whole lines of a member with ``pyarrow.csv``, and sniffing its first line.

One bad row never costs more than itself: invalid UTF-8 is replaced (U+FFFD) rather
than refusing the archive, and in a quoted table a quote left open (which Arrow carries
over the line end, swallowing the rows after it into one bad row) makes the chunk be
parsed again line by line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from gbifxdl.archive._layout import FileLayout

HEAD_BYTES = 1 << 20  # the start of a member read to find its line end and column count
BOM = b"\xef\xbb\xbf"


def is_utf8(encoding: str) -> bool:
    """Return whether ``encoding`` names UTF-8 (any spelling)."""
    return encoding.upper().replace("-", "").replace("_", "") in ("UTF8", "UTF8SIG")


def line_end(head: bytes) -> bytes:
    """Return the byte that ends lines in a member starting with ``head``: ``\\n`` (LF or CRLF) or ``\\r`` (CR only).

    Only a member without any LF in its first megabyte is taken for CR-only (old Mac
    exports): a stray CR inside a value of an LF file must not change how it is cut.
    """
    return b"\r" if b"\n" not in head and b"\r" in head else b"\n"


@dataclass
class BadRows:
    """Rows of one chunk with too few or too many fields: how many, and the first few."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def handler(self, row: Any) -> str:
        """Count ``row`` (an Arrow invalid-row record) and keep it as an example; return "skip"."""
        self.count += 1
        if len(self.examples) < 3:
            text = " ".join((row.text or "").replace("\t", " ").split())[:60]
            self.examples.append(f"{row.actual_columns} fields, expected {row.expected_columns}: {text!r}")
        return "skip"


@dataclass
class Parsed:
    """One parsed chunk: its rows, its bad rows, and whether invalid UTF-8 was replaced in it."""

    table: pa.Table
    bad: BadRows
    repaired: bool = False


class ChunkParser:
    """Parses chunks of whole lines of one member into tables of string columns ``c<index>``."""

    def __init__(self, layout: FileLayout, raw_names: list[str], include: list[str], eol: bytes) -> None:
        self.quote: str | bool = layout.fields_enclosed_by or False
        self.delimiter = layout.fields_terminated_by
        self.transcode = None if is_utf8(layout.encoding) else layout.encoding
        self.eol = eol
        self.read_options = pacsv.ReadOptions(
            column_names=raw_names,
            block_size=1 << 20,  # fastest here; the blocks of a chunk are concatenated after
            use_threads=False,  # one chunk per thread parses faster than Arrow's own threading here
        )
        self.convert_options = pacsv.ConvertOptions(
            include_columns=include,
            column_types={name: pa.string() for name in include},
            strings_can_be_null=True,
            null_values=[""],
            check_utf8=False,  # the whole chunk is checked before parsing
        )

    def _read(self, chunk: bytes, bad: BadRows) -> pa.Table:
        options = pacsv.ParseOptions(
            delimiter=self.delimiter,
            quote_char=self.quote,
            double_quote=bool(self.quote),
            escape_char=False,
            newlines_in_values=False,
            ignore_empty_lines=True,
            invalid_row_handler=bad.handler,
        )
        return pacsv.read_csv(pa.py_buffer(chunk), read_options=self.read_options, parse_options=options,
                              convert_options=self.convert_options)

    def parse(self, chunk: bytes) -> Parsed:
        """Return the rows of ``chunk`` (whole lines), bad rows counted and skipped."""
        repaired = False
        if self.transcode:  # Arrow parses UTF-8: other (ASCII-compatible) encodings are converted first
            chunk = chunk.decode(self.transcode, "replace").encode("utf-8")
        elif not _valid_utf8(chunk):
            # checked here, once per chunk, rather than by Arrow per column: invalid UTF-8 in a
            # bad row would otherwise break Arrow's invalid-row handler and fail the whole chunk
            chunk, repaired = chunk.decode("utf-8", "replace").encode("utf-8"), True
        bad = BadRows()
        table = self._read(chunk, bad)
        if self.quote:
            lines = [line for line in chunk.split(self.eol) if line.strip(b"\r\n")]
            if table.num_rows + bad.count < len(lines):  # a quote left open swallowed line ends
                table, bad = self._line_by_line(lines)
        return Parsed(table, bad, repaired)

    def _line_by_line(self, lines: list[bytes]) -> tuple[pa.Table, BadRows]:
        bad = BadRows()
        tables = [self._read(line + self.eol, bad) for line in lines]
        return pa.concat_tables(tables), bad


def _valid_utf8(data: bytes) -> bool:
    """Return whether ``data`` is valid UTF-8 (Arrow's vectorised check: no copy, no decode)."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64).tobytes())
    try:
        pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)]).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def count_columns(layout: FileLayout, head: bytes, eol: bytes) -> int | None:
    """Return the number of fields on the first line of ``head`` (quotes honoured), or None when empty."""
    line = head.split(eol, 1)[0].rstrip(b"\r\n")
    if not line.strip():
        return None
    if not is_utf8(layout.encoding):
        line = line.decode(layout.encoding, "replace").encode("utf-8")
    try:
        table = pacsv.read_csv(
            pa.py_buffer(line + b"\n"),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=layout.fields_terminated_by,
                                             quote_char=layout.fields_enclosed_by or False,
                                             double_quote=bool(layout.fields_enclosed_by), escape_char=False),
            convert_options=pacsv.ConvertOptions(check_utf8=False),
        )
        return max(table.num_columns, 1)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. a quote left open: count plainly
        return max(len(line.split(layout.fields_terminated_by.encode())), 1)
