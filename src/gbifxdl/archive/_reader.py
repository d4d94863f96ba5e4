"""Streaming one member of a DwC-A zip as Arrow record batches (``pyarrow.csv`` over ``zipfile``)."""

from __future__ import annotations

import queue
import struct
import threading
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, TYPE_CHECKING

import pyarrow as pa

from gbifxdl.archive._layout import FileLayout
from gbifxdl.archive._parse import BOM, HEAD_BYTES, ChunkParser, Parsed, count_columns, line_end
from gbifxdl.errors import ArchiveError

try:  # ISA-L inflates about 2.5x faster than zlib; optional, same interface
    from isal import isal_zlib as _inflate
except ImportError:  # pragma: no cover - depends on the environment
    _inflate = zlib  # type: ignore[assignment]

if TYPE_CHECKING:
    from gbifxdl.archive import Archive

class MemberReader:
    """Iterate over a member as Arrow record batches of the chosen columns, all strings.

    Columns are term names (``"speciesKey"``) or ``"id"`` (the core id / extension
    core id). Undeclared columns come back all null; default-only fields as their
    default; empty values as null (or the field's default). Rows with another number
    of fields than the header (or, without a header, than the first row, or than
    ``meta.xml`` declares when that is more) are skipped and counted in
    :attr:`bad_rows`. Lines end in LF, CRLF or CR alone (whatever ``meta.xml`` says:
    the file is looked at); invalid UTF-8 is replaced and counted in :attr:`repaired_chunks`.
    """

    PARSERS = 2  # chunks parsed at once

    def __init__(self, archive: Archive, layout: FileLayout, columns: Sequence[str], *, chunk_bytes: int,
                 on_bytes: Callable[[int], None] | None = None) -> None:
        self.archive = archive
        self.on_bytes = on_bytes
        self.layout = layout
        self.columns = tuple(columns)
        self.chunk_bytes = chunk_bytes  # uncompressed bytes parsed at once, by one thread
        self.rows = 0
        self.bad_rows = 0
        self.bad_examples: list[str] = []
        self.repaired_chunks = 0  # chunks in which invalid UTF-8 was replaced
        self.n_columns: int | None = None  # fields per row, once known

    def _plan(self, n_columns: int) -> tuple[list[str], list[tuple[str, int | None, str | None]]]:
        """Return the raw column names to parse, and per output column (name, index, default)."""
        plan: list[tuple[str, int | None, str | None]] = []
        for name in self.columns:
            if name == "id":
                plan.append((name, self.layout.id_index, None))
                continue
            spec = self.layout.field(name)
            if spec is None:
                plan.append((name, None, None))
            else:
                plan.append((name, spec.index, spec.default))
        for name, index, _ in plan:
            if index is not None and index >= n_columns:
                raise ArchiveError(
                    f"{self.archive.path}: meta.xml puts {name!r} in column {index + 1} of "
                    f"{self.layout.location}, whose header has only {n_columns} columns; the archive is inconsistent"
                )
        return [f"c{i}" for i in range(n_columns)], plan

    def _columns(self, head: bytes, eol: bytes) -> int:
        """Return the number of fields each row must have: the header's, else the first row's or more."""
        counted = count_columns(self.layout, head, eol)
        declared = self.layout.n_declared_columns
        if self.layout.ignore_header_lines:
            return counted or declared
        # no header: the declared indexes are read whatever extra columns the rows carry
        return max(counted or 0, declared)

    def _check_separators(self) -> None:
        layout = self.layout
        delimiter, quote = layout.fields_terminated_by, layout.fields_enclosed_by

        def one_byte(value: str) -> bool:
            return len(value) == 1 and len(value.encode("utf-8")) == 1 and value not in "\r\n"

        if not one_byte(delimiter) or (quote and (not one_byte(quote) or quote == delimiter)):
            raise ArchiveError(
                f"{self.archive.path}: {layout.location} uses separators this reader does not "
                f"support (fields {delimiter!r}, quotes {quote!r}); fix meta.xml or re-save the file "
                "with tabs and no quotes"
            )

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        layout = self.layout
        self._check_separators()
        try:
            with zipfile.ZipFile(self.archive.path) as zf:
                with zf.open(layout.location) as member:
                    head = member.read(HEAD_BYTES).removeprefix(BOM)
                eol = line_end(head)
                self.n_columns = self._columns(head, eol)
                raw_names, plan = self._plan(self.n_columns)
                include = sorted({f"c{i}" for _, i, _ in plan if i is not None}, key=lambda s: int(s[1:]))
                parser = ChunkParser(layout, raw_names, include, eol)
                with _open_member(zf, layout.location) as member:
                    pieces = _counted(_without_bom(_pieces(member)), self.on_bytes)
                    yield from self._batches(pieces, parser, plan, eol)
        except (zipfile.BadZipFile, EOFError, zlib.error, _inflate.error) as exc:
            raise ArchiveError(
                f"{self.archive.path}: {layout.location} is damaged ({exc}); the download may be "
                "truncated: download it again"
            ) from exc
        except (NotImplementedError, RuntimeError) as exc:  # exotic compression, encryption
            raise ArchiveError(f"{self.archive.path}: {exc}; unzip and re-zip it with plain deflate") from exc
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeError, ValueError, OSError) as exc:
            text = " ".join(str(exc).split())[:300]
            raise ArchiveError(f"{self.archive.path}: cannot parse {layout.location}: {text}") from exc

    def _batches(
        self,
        pieces: Iterator[bytes],
        parser: ChunkParser,
        plan: list[tuple[str, int | None, str | None]],
        eol: bytes,
    ) -> Iterator[pa.RecordBatch]:
        # Arrow's streaming reader parses on one core: chunks of whole lines parse on all of
        # them (read_csv releases the GIL), while the next chunks inflate in the background
        chunks = _prefetched(_line_chunks(pieces, self.chunk_bytes, self.layout.ignore_header_lines, eol))
        with ThreadPoolExecutor(max_workers=self.PARSERS, thread_name_prefix="gbifxdl-parse") as pool:
            pending: deque[Future[Parsed]] = deque()
            for chunk in chunks:
                pending.append(pool.submit(parser.parse, chunk))
                if len(pending) > self.PARSERS:
                    yield from self._select(pending.popleft().result(), plan)
            while pending:
                yield from self._select(pending.popleft().result(), plan)

    def _select(self, parsed: Parsed, plan: list[tuple[str, int | None, str | None]]) -> Iterator[pa.RecordBatch]:
        """Yield the parsed table as one batch of the planned columns (none when it is empty)."""
        self.bad_rows += parsed.bad.count
        self.bad_examples.extend(parsed.bad.examples[:max(0, 3 - len(self.bad_examples))])
        self.repaired_chunks += parsed.repaired
        table = parsed.table
        if table.num_rows == 0:
            return
        batch = table.combine_chunks().to_batches()[0]
        self.rows += batch.num_rows
        arrays = []
        for name, index, default in plan:
            if index is None:
                arrays.append(pa.nulls(batch.num_rows, pa.string()) if default is None
                              else pa.repeat(pa.scalar(default, pa.string()), batch.num_rows))
                continue
            column = batch.column(f"c{index}")
            if default is not None:
                column = column.fill_null(default)
            arrays.append(column)
        yield pa.RecordBatch.from_arrays(arrays, names=[name for name, _, _ in plan])


def _without_bom(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Yield ``pieces`` without a UTF-8 byte order mark at the very start."""
    head = b""
    for piece in pieces:
        head += piece
        if len(head) >= len(BOM):
            break
    head = head.removeprefix(BOM)
    if head:
        yield head
    yield from pieces


def _line_chunks(pieces: Iterator[bytes], size: int, skip_lines: int, eol: bytes = b"\n") -> Iterator[bytes]:
    """Yield the bytes of ``pieces`` in chunks of whole lines (ended by ``eol``), minus the first ``skip_lines``.

    A chunk ends at the last line end before the next multiple of ``size`` bytes into the
    member (or a later one when a line is longer): cuts that depend on the bytes only, not
    on how the inflater happened to hand them over, so the output does not either. Each
    byte is copied once, when a chunk's pieces are joined.
    """
    held: list[tuple[bytes, int, int]] = []  # (piece, start, stop): bytes not yet in a chunk
    end = 0  # member offset after the last held byte
    target = size  # member offset of the next cut
    for piece in pieces:
        held.append((piece, 0, len(piece)))
        end += len(piece)
        while end >= target:
            cut = _cut_before(held, len(piece) - (end - target), eol)
            if cut is None:
                # the held bytes before the cut: no line end in them for this long, not a text table
                if sum(stop - start for _, start, stop in held) - (end - target) > 16 * size:
                    raise pa.ArrowInvalid(f"a line longer than {16 * size >> 20} MB")
                target += size
                continue
            target += size
            chunk, held = _split(held, *cut)
            chunk, skip_lines = _skip(chunk, skip_lines, eol)
            if chunk:
                yield chunk
    # the end: the whole lines, then a last line without a line end (if any)
    cut = _cut_before(held, held[-1][2], eol) if held else None
    if cut is not None:
        chunk, held = _split(held, *cut)
        chunk, skip_lines = _skip(chunk, skip_lines, eol)
        if chunk:
            yield chunk
    chunk = b"".join(memoryview(p)[a:z] for p, a, z in held)
    if chunk.strip() and not skip_lines:
        yield chunk + eol


def _split(held: list[tuple[bytes, int, int]], index: int, at: int) -> tuple[bytes, list[tuple[bytes, int, int]]]:
    """Return the held bytes before offset ``at`` of piece ``index`` joined, and the held rest."""
    last, start, stop = held[index]
    chunk = b"".join([*(memoryview(p)[a:z] for p, a, z in held[:index]), memoryview(last)[start:at]])
    return chunk, ([(last, at, stop)] if at < stop else []) + held[index + 1:]


def _cut_before(held: list[tuple[bytes, int, int]], limit: int, eol: bytes) -> tuple[int, int] | None:
    """Return (held index, offset after the line end) of the last line end before ``limit``
    bytes into the last held piece (counting from its start), or None when there is none."""
    for index in range(len(held) - 1, -1, -1):
        piece, start, stop = held[index]
        found = piece.rfind(eol, start, limit if index == len(held) - 1 else stop)
        if found >= 0:
            return index, found + 1
    return None


def _skip(chunk: bytes, lines: int, eol: bytes) -> tuple[bytes, int]:
    """Return ``chunk`` without its first ``lines`` lines, and how many lines are still to skip."""
    start = 0
    while lines and start < len(chunk):
        end = chunk.find(eol, start)
        if end < 0:
            return b"", lines  # the chunk ends inside a header line: only whole chunks are cut
        start, lines = end + 1, lines - 1
    return (chunk[start:] if start else chunk), lines


def _pieces(stream: IO[bytes] | _Inflating, size: int = 1 << 20) -> Iterator[bytes]:
    """Yield a stream's bytes as they come (inflated pieces of any size, never empty)."""
    if isinstance(stream, _Inflating):
        yield from stream.pieces()
        return
    while data := stream.read(size):
        yield data


def _counted(pieces: Iterator[bytes], on_bytes: Callable[[int], None] | None) -> Iterator[bytes]:
    """Yield ``pieces``, reporting each one's size to ``on_bytes`` (if any)."""
    if on_bytes is None:
        yield from pieces
        return
    for piece in pieces:
        on_bytes(len(piece))
        yield piece


class _Failed:
    """An exception raised in the producer thread, carried to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _prefetched(items: Iterator[bytes], depth: int = 2) -> Iterator[bytes]:
    """Yield ``items``, produced ``depth`` ahead in a background thread (inflating releases the GIL)."""
    slots: queue.Queue[bytes | _Failed | None] = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(None)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            slots.put(_Failed(exc))

    producer = threading.Thread(target=produce, name="gbifxdl-inflate", daemon=True)
    producer.start()
    try:
        while (item := slots.get()) is not None:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        while producer.is_alive():  # let it notice the stop, so the member is not read after close
            try:
                slots.get(timeout=0.05)
            except queue.Empty:
                pass
        producer.join()


def _open_member(zf: zipfile.ZipFile, name: str) -> IO[bytes] | _Inflating:
    """Return a readable stream of one member's uncompressed bytes."""
    info = zf.getinfo(name)
    if info.compress_type != zipfile.ZIP_DEFLATED or info.flag_bits & 0x1:
        return zf.open(info)  # stored, encrypted or exotic: zipfile knows (or says why not)
    return _Inflating(zf.filename or "", info)


class _Inflating:
    """A deflated zip member inflated piece by piece, checked against its CRC-32 and size.

    zipfile's own reader does the same in Python with zlib; this one reads larger
    chunks, inflates with ISA-L when available, and never joins what it inflated.
    """

    CHUNK = 256 * 1024  # compressed bytes per read

    def __init__(self, path: str, info: zipfile.ZipInfo) -> None:
        self._info = info
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._file.seek(info.header_offset)
        header = self._file.read(30)
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            self._file.close()
            raise zipfile.BadZipFile(f"bad local header for {info.filename}")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        self._file.seek(info.header_offset + 30 + name_len + extra_len)

    def pieces(self) -> Iterator[bytes]:
        """Yield the inflated bytes piece by piece, as inflated (never empty)."""
        inflater = _inflate.decompressobj(-15)
        left, crc, size = self._info.compress_size, 0, 0
        while left:
            chunk = self._file.read(min(self.CHUNK, left))
            if not chunk:
                raise EOFError(f"{self._info.filename} ends {left} bytes early: the zip is truncated")
            left -= len(chunk)
            data = inflater.decompress(chunk)
            if data:
                crc, size = _inflate.crc32(data, crc), size + len(data)
                yield data
        tail = inflater.flush()
        crc, size = (_inflate.crc32(tail, crc), size + len(tail)) if tail else (crc, size)
        if crc != self._info.CRC or size != self._info.file_size:
            raise zipfile.BadZipFile(f"bad CRC-32 or size for {self._info.filename}")
        if tail:
            yield tail

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _Inflating:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
