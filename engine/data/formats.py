"""File formats: streaming readers, format detection and the plugin registry (no torch).

A reader takes a path and yields ``(where, item)`` pairs: ``where`` is ``file:line`` (or
``file: record N`` inside a JSON array, ``file: row N`` in Parquet) and ``item`` is either the
record (a dict) or a ``BadRecord`` naming what is wrong with that one record, so a validation
report can go on past it. Problems with the whole file raise ``DataError``.

Built-in formats: ``jsonl``, ``json``, ``csv``, ``tsv``, ``text`` (a sample per line),
``text-blocks`` (a sample per blank-line separated block), ``parquet`` and ``arrow`` (Arrow IPC,
as ``datasets`` writes; both streamed by record batch with pyarrow); any text format may be
gzip-compressed (``data.jsonl.gz``), read as a stream, or zstd-compressed (``.zst``) when the
``zstandard`` package is installed. More come from the entry-point group ``llamahome.formats``
(see docs/formats.md) or from ``register_format``.

A folder is read as the files it holds, one after the other (``folder_files``): the Arrow files
of a ``datasets`` ``save_to_disk`` folder in the order its ``state.json`` lists them (what
``datasets.load_from_disk`` reads; of a ``DatasetDict``, its ``train`` split), else every data
file of the folder in name order, each in its own format (``data.format`` forces one for all),
leaving out a repository's documents (README.md, LICENSE...). Subfolders are not read (a
repository's ``data/`` may hold its test split beside its train split): the error names them.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO, Any

from engine.data.shapes import json_kind
from engine.errors import DataError

Record = dict[str, Any]
ENTRY_POINT_GROUP = "llamahome.formats"


@dataclass(frozen=True)
class BadRecord:
    """One record that could not be read: why (``code``: bad_json, too_deep, not_utf8, not_object, ragged_row)."""

    code: str
    reason: str


Item = tuple[str, "Record | BadRecord"]
Reader = Callable[[Path], Iterator[Item]]


@dataclass(frozen=True)
class Format:
    """A registered format: its name, reader and the file extensions it claims."""

    name: str
    reader: Reader
    extensions: tuple[str, ...] = ()


_REGISTRY: dict[str, Format] = {}
_PLUGINS_LOADED = False


def register_format(name: str, reader: Reader, extensions: tuple[str, ...] = ()) -> None:
    """Add (or replace) a format; ``extensions`` are lower-case with the dot, e.g. ``(".xml",)``."""
    _REGISTRY[name] = Format(name, reader, tuple(e.lower() for e in extensions))


def _load_plugins() -> None:
    """Register every ``llamahome.formats`` entry point once (a Format, or a reader function)."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the built-ins
            raise DataError(f"format plugin {point.name!r} ({point.value}) failed to load: {exc}") from None
        if isinstance(loaded, Format):
            _REGISTRY[loaded.name] = loaded
        else:
            register_format(point.name, loaded, tuple(getattr(loaded, "extensions", ())))


def formats() -> dict[str, Format]:
    """Every known format by name, plugins included."""
    _load_plugins()
    return dict(_REGISTRY)


COMPRESSED = (".gz", ".zst")
"""Suffixes of compressed files, read through in their inner format."""


def is_gzip(path: Path) -> bool:
    """Whether ``path`` is named as compressed (``.gz``, or ``.zst``)."""
    return path.suffix.lower() in COMPRESSED


def open_binary(path: Path) -> IO[bytes]:
    """``path`` opened for reading bytes, decompressed on the fly when it is a ``.gz`` / ``.zst`` file."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rb")
    if suffix == ".zst":
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError:
            raise DataError(f"{path}: zstd-compressed, and the zstandard package is not installed; "
                            f"decompress it first (zstd -d {path.name}) or pip install zstandard") from None
        return zstandard.open(path, "rb")  # type: ignore[no-any-return]
    return path.open("rb")


NOT_DATA = ("readme", "license", "licence", "changelog", "notice", "citation", "contributing")
"""Names (before the first dot) of a dataset repository's documents, which a folder's reading leaves out."""


def folder_files(folder: Path) -> list[Path]:
    """The data files a folder holds, in reading order (see the module docstring); DataError if none."""
    splits = _json_file(folder / "dataset_dict.json").get("splits")
    if isinstance(splits, list):
        if "train" not in splits:
            raise DataError(f"{folder}: a datasets DatasetDict without a train split (splits: "
                            f"{', '.join(map(str, splits))}); give the split's folder, e.g. {folder / str(splits[0])}")
        return folder_files(folder / "train")
    listed = _json_file(folder / "state.json").get("_data_files")
    if isinstance(listed, list):
        files = [folder / str(entry.get("filename", "")) for entry in listed if isinstance(entry, dict)]
        missing = [f for f in files if not f.is_file()]
        if missing or not files:
            raise DataError(f"{folder}: a datasets save_to_disk folder whose Arrow file "
                            f"{missing[0].name if missing else '(none listed)'} is missing")
        return files
    known = {ext for fmt in formats().values() for ext in fmt.extensions}
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.name.split(".")[0].lower() not in NOT_DATA
                   and (p.with_suffix("") if is_gzip(p) else p).suffix.lower() in known)
    if not files:
        inner = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        where = (f"its folders: {', '.join(inner)}; name one, e.g. {folder / inner[0]}" if inner
                 else f"looked for {', '.join(sorted(known))}")
        raise DataError(f"{folder}: no data files in this folder ({where})")
    return files


def _json_file(path: Path) -> dict[str, Any]:
    """A small JSON object file ({} when missing or not one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _head(path: Path, size: int = 65536) -> bytes:
    """The first ``size`` bytes of the (decompressed) file."""
    with open_binary(path) as handle:
        return handle.read(size)


def detect_format(path: Path) -> str:
    """The format of ``path``: by extension (the one before ``.gz``), else by its first bytes."""
    if path.is_dir():
        return detect_format(folder_files(path)[0])
    known = formats()
    suffix = (path.with_suffix("") if is_gzip(path) else path).suffix.lower()
    for fmt in known.values():
        if suffix in fmt.extensions:
            if fmt.name == "json" and _is_json_lines(path):
                return "jsonl"  # JSON Lines saved as .json, as ``datasets``' to_json writes by default
            return "text-blocks" if fmt.name == "text" and _has_blocks(path) else fmt.name
    head = _head(path)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith((b"ARROW1", b"\xff\xff\xff\xff")):
        return "arrow"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"["):
        return "json"
    if stripped.startswith(b"{"):
        return "jsonl" if _first_line_is_json(stripped) else "json"
    first = stripped.split(b"\n", 1)[0]
    if b"\t" in first:
        return "tsv"
    return "text-blocks" if _has_blocks(path) else "text"


def _first_line_is_json(head: bytes) -> bool:
    """Whether the first line alone parses as JSON (JSONL) rather than starting a JSON document."""
    try:
        json.loads(head.split(b"\n", 1)[0])
    except ValueError:
        return False
    return True


def _is_json_lines(path: Path) -> bool:
    """Whether a file starts with an object that is a whole line, followed by another line."""
    head = _head(path).lstrip(b"\xef\xbb\xbf \t\r\n")
    first, _, rest = head.partition(b"\n")
    return head.startswith(b"{") and bool(rest.strip()) and _first_line_is_json(first)


def _has_blocks(path: Path) -> bool:
    """Whether a text file's head holds blank-line separated blocks of several lines."""
    head = _head(path).replace(b"\r\n", b"\n")
    return any(b"\n" in block.strip(b"\n") for block in head.split(b"\n\n")[:-1])


def check_file(path: Path) -> None:
    """DataError unless ``path`` is a readable, non-empty file (or a folder of them)."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        for file in folder_files(path):
            check_file(file)
        return
    try:
        size = path.stat().st_size
        with path.open("rb"):
            pass
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    if size == 0:
        raise DataError(f"{path}: file is empty")


def read_items(path: Path, fmt: str | None = None) -> Iterator[Item]:
    """Stream ``(where, record or BadRecord)`` from ``path`` (a file or a folder of them) in format ``fmt``
    (detected if None)."""
    check_file(path)
    if path.is_dir():
        return (item for file in folder_files(path) for item in read_items(file, fmt))
    name = fmt or detect_format(path)
    known = formats()
    if name not in known:
        raise DataError(f"{path}: unknown format {name!r} (known: {', '.join(sorted(known))})")
    items = known[name].reader(path)
    return _gzip_errors(path, items) if is_gzip(path) else items


def _gzip_errors(path: Path, items: Iterator[Item]) -> Iterator[Item]:
    """``items``, with a damaged or truncated compressed stream turned into one DataError line."""
    kind = "gzip" if path.suffix.lower() == ".gz" else "zstd"
    try:
        yield from items
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: damaged {kind} file ({exc or 'it ends too early'})") from None
    except Exception as exc:  # noqa: BLE001 - zstandard's ZstdError, when that package reads it
        if type(exc).__name__ != "ZstdError":
            raise
        raise DataError(f"{path}: damaged {kind} file ({exc})") from None


# --- the built-in readers ----------------------------------------------------------------------

def _decode(raw: bytes, number: int) -> str | BadRecord:
    """A line as text, or a BadRecord when it is not UTF-8 (a BOM is allowed on line 1)."""
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        return BadRecord("not_utf8", f"not UTF-8 ({exc.reason})")


def _lines(path: Path) -> Iterator[tuple[int, str | BadRecord]]:
    """``(line number, text or BadRecord)`` for every line of a file, streamed."""
    with open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            yield number, _decode(raw, number)


def read_jsonl(path: Path) -> Iterator[Item]:
    """One JSON object per line; blank lines are skipped."""
    for number, line in _lines(path):
        where = f"{path}:{number}"
        if isinstance(line, BadRecord):
            yield where, line
        elif line.strip():
            yield where, _parse_object(line)


TOO_DEEP = "JSON nested too deeply to read (thousands of [ or {)"


def _parse_object(line: str) -> Record | BadRecord:
    """A JSON object from one line, or why it is not one."""
    try:
        record = json.loads(line.rstrip("\r\n"))  # a line cut short is named where it ends, not "column 1"
    except json.JSONDecodeError as exc:
        return BadRecord("bad_json", f"invalid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        return BadRecord("too_deep", TOO_DEEP)
    if not isinstance(record, dict):
        return BadRecord("not_object", f"expected a JSON object, got {json_kind(record)}")
    return record


def read_json(path: Path) -> Iterator[Item]:
    """A JSON array of records, or an object whose single list value holds them (read whole)."""
    try:
        with open_binary(path) as handle:
            text = handle.read().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 ({exc.reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = ('; the file is JSON Lines (an object a line): set data.format = "jsonl", or "" to detect it'
                if exc.msg == "Extra data" and _is_json_lines(path) else "")
        raise DataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno}){hint}") from None
    except RecursionError:
        raise DataError(f"{path}: {TOO_DEEP}") from None
    if isinstance(data, dict):
        lists = [value for value in data.values() if isinstance(value, list)]
        if len(lists) != 1:
            raise DataError(f"{path}: expected a JSON array of records or an object holding one")
        data = lists[0]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of records")
    for index, record in enumerate(data, start=1):
        item = record if isinstance(record, dict) else BadRecord("not_object", "expected a JSON object")
        yield f"{path}: record {index}", item


_JSON_COLUMNS = ("messages", "conversations", "history")


def _cell_record(row: dict[str, Any]) -> Record | BadRecord:
    """A CSV/TSV/Parquet row as a record; JSON-encoded list columns (messages...) are decoded."""
    record = {k: v for k, v in row.items() if k is not None and v is not None and v != ""}
    for column in _JSON_COLUMNS:
        value = record.get(column)
        if isinstance(value, str):
            try:
                record[column] = json.loads(value)
            except json.JSONDecodeError as exc:
                return BadRecord("bad_json", f"{column}: invalid JSON: {exc.msg} (column {exc.colno})")
            except RecursionError:
                return BadRecord("too_deep", f"{column}: {TOO_DEEP}")
    return record


def _ragged(row: dict[Any, Any], header: int) -> BadRecord | None:
    """Why a CSV/TSV row does not match its header's field count, if it does not."""
    extra = row.get(None)
    found = header + len(extra) if extra else header - sum(1 for value in row.values() if value is None)
    if found == header:
        return None
    return BadRecord("ragged_row", f"{found} field{'s' if found != 1 else ''}, the header names {header}")


def _read_delimited(path: Path, delimiter: str) -> Iterator[Item]:
    """Rows of a CSV/TSV file with a header line; ``where`` is the row's first line."""
    try:
        with io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, delimiter=delimiter)
            start = 2
            for row in reader:
                yield f"{path}:{start}", _ragged(row, len(reader.fieldnames or ())) or _cell_record(row)
                start = reader.line_num + 1
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 ({exc.reason})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: invalid CSV: {exc}") from None


def read_csv(path: Path) -> Iterator[Item]:
    """Comma-separated values with a header naming the fields."""
    return _read_delimited(path, ",")


def read_tsv(path: Path) -> Iterator[Item]:
    """Tab-separated values with a header naming the fields."""
    return _read_delimited(path, "\t")


def read_text(path: Path) -> Iterator[Item]:
    """A ``{"text"}`` sample per non-blank line."""
    for number, line in _lines(path):
        if isinstance(line, BadRecord) or line.strip():
            yield f"{path}:{number}", line if isinstance(line, BadRecord) else {"text": line.rstrip("\r\n")}


def read_text_blocks(path: Path) -> Iterator[Item]:
    """A ``{"text"}`` sample per block of lines separated by blank lines; ``where`` is its first line."""
    block: list[str] = []
    start = 0
    for number, line in _lines(path):
        if isinstance(line, BadRecord):
            yield f"{path}:{number}", line
            continue
        if line.strip():
            start = start or number
            block.append(line.rstrip("\r\n"))
        elif block:
            yield f"{path}:{start}", {"text": "\n".join(block)}
            block, start = [], 0
    if block:
        yield f"{path}:{start}", {"text": "\n".join(block)}


def read_parquet(path: Path) -> Iterator[Item]:
    """Rows of a Parquet file, streamed a record batch at a time (never the whole table)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    row = 0
    for batch in source.iter_batches(batch_size=1024):
        for values in batch.to_pylist():
            row += 1
            yield f"{path}: row {row}", _cell_record(values)


def read_arrow(path: Path) -> Iterator[Item]:
    """Rows of an Arrow IPC file (stream or file form, as ``datasets`` writes), a record batch at a time."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    try:
        source = pa.memory_map(str(path))
        try:
            batches = iter(ipc.open_stream(source))
        except pa.ArrowInvalid:
            reader = ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable Arrow file ({exc})") from None
    row = 0
    for batch in batches:
        for values in batch.to_pylist():
            row += 1
            yield f"{path}: row {row}", _cell_record(values)


register_format("jsonl", read_jsonl, (".jsonl", ".ndjson"))
register_format("json", read_json, (".json",))
register_format("arrow", read_arrow, (".arrow", ".feather"))
register_format("csv", read_csv, (".csv",))
register_format("tsv", read_tsv, (".tsv", ".tab"))
register_format("text", read_text, (".txt", ".text", ".md"))
register_format("text-blocks", read_text_blocks)
register_format("parquet", read_parquet, (".parquet", ".pq"))
