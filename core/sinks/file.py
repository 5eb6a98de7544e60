"""The file sink: one JSON line per record in ``results.jsonl``, JPEGs beside it.

Layout of the folder (``SinkConfig.path``)::

    results.jsonl              one record a line (ResultRecord.to_dict, plus "files")
    images/{stream}/{seq}-{i}.jpg

``"files"`` lists each record's image paths relative to the folder, in the order of its
``"images"``. :meth:`FileSink.open` starts ``results.jsonl`` afresh and leaves other files
alone (images of an earlier run with the same names are overwritten; no file is deleted).
Lines are buffered and written out by :meth:`FileSink.flush` (the pipeline calls it after each
batch); :meth:`FileSink.close` flushes and fsyncs the file and the folder, so a record that
was closed survives a power cut. Images are written as they come, not fsynced one by one
(that would cost a disk round trip per crop); the close fsyncs the JSON lines that point at them.

The sink never writes outside its folder, even through a symbolic link inside it (a
``images`` link to elsewhere raises). Any OS error -- disk full, permission denied, a file where a
folder should be -- raises :class:`~core.errors.SinkError` with the path and errno.
"""

from __future__ import annotations

import contextlib
import errno as errno_names
import json
import os
from pathlib import Path
from typing import BinaryIO

from core.errors import SinkError
from core.sinks.base import ResultRecord, Sink

__all__ = ["FileSink"]


def _sink_error(exc: OSError, what: str, path: Path) -> SinkError:
    code = exc.errno or 0
    name = errno_names.errorcode.get(code, "?")
    return SinkError(code, f"file sink cannot {what} ({name}: {exc.strerror or exc})", str(path))


class FileSink(Sink):
    """Writes records under ``path`` (created if missing); see the module docstring."""

    name = "file"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.results_path = self.path / "results.jsonl"
        self.records = 0
        self._file: BinaryIO | None = None
        self._root: Path | None = None
        self._made_dirs: set[Path] = set()

    def open(self) -> None:
        if self._file is not None:
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._root = self.path.resolve()
            self._file = open(self.results_path, "wb")  # noqa: SIM115 - held until close()
        except OSError as exc:
            raise _sink_error(exc, "open its folder", Path(exc.filename or self.path)) from exc
        self._made_dirs.clear()

    def _inside(self, target: Path) -> Path:
        """``target``, after checking that it resolves inside the sink's folder."""
        assert self._root is not None
        resolved = target.resolve()
        if not resolved.is_relative_to(self._root):
            raise SinkError(
                errno_names.EPERM,
                f"file sink refuses to write outside {self._root} (a link points away)",
                str(target),
            )
        return target

    def _write_image(self, relative: str, data: bytes) -> None:
        target = self.path / relative
        folder = target.parent
        try:
            if folder not in self._made_dirs:
                folder.mkdir(parents=True, exist_ok=True)
                self._inside(folder)
                self._made_dirs.add(folder)
            self._inside(target)
            with open(target, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            if isinstance(exc, SinkError):
                raise
            raise _sink_error(exc, "write an image", Path(exc.filename or target)) from exc

    def emit(self, record: ResultRecord) -> None:
        if self._file is None:
            raise SinkError(f"file sink {self.path}: emit before open() or after close()")
        files = [
            f"images/{int(record.stream_id)}/{int(record.seq)}-{i}.jpg"
            for i in range(len(record.images))
        ]
        for relative, image in zip(files, record.images, strict=True):
            self._write_image(relative, image.jpeg)
        line = json.dumps({**record.to_dict(), "files": files}, separators=(",", ":"))
        try:
            self._file.write(line.encode() + b"\n")
        except OSError as exc:
            raise _sink_error(exc, "write results", self.results_path) from exc
        self.records += 1

    def flush(self) -> None:
        if self._file is None:
            return
        try:
            self._file.flush()
        except OSError as exc:
            raise _sink_error(exc, "write results", self.results_path) from exc

    def close(self) -> None:
        handle, self._file = self._file, None
        if handle is None:
            return
        try:
            handle.flush()
            try:
                os.fsync(handle.fileno())
            except OSError as exc:  # EINVAL: a file that cannot be fsynced (a pipe, a device)
                if exc.errno != errno_names.EINVAL:
                    raise
        except OSError as exc:
            raise _sink_error(exc, "write results", self.results_path) from exc
        finally:
            with contextlib.suppress(OSError):  # its buffer could not be written: reported above
                handle.close()
        try:
            folder = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError:
            pass  # a folder that cannot be fsynced: the data itself is on disk
