"""RecordIO framing as Mesos streams it: ``<decimal byte length>\\n<record>``, record after record.

Why the kernel has its own: the scheduler and operator event streams of the kernel are what the
bridge's Mesos client parses; a framing bug shared by both would never show in a test. This is
written from Mesos' ``src/common/recordio.hpp`` (``Encoder``/``Decoder``).
"""

from __future__ import annotations

__all__ = ["RecordIOError", "Reader", "frame"]


class RecordIOError(ValueError):
    """The byte stream is not RecordIO (a bad length line or a record that is too large)."""


def frame(record: bytes) -> bytes:
    """One record, framed."""
    return b"%d\n%s" % (len(record), record)


class Reader:
    """Incremental decoder: feed bytes as they arrive, get the complete records back."""

    def __init__(self, *, max_record: int = 64 * 1024 * 1024) -> None:
        self._max = max_record
        self._pending = bytearray()
        self._want: int | None = None  # length of the record being read, once its header is in

    def feed(self, chunk: bytes) -> list[bytes]:
        self._pending += chunk
        records: list[bytes] = []
        while True:
            if self._want is None:
                newline = self._pending.find(b"\n")
                if newline < 0:
                    if len(self._pending) > 20:
                        raise RecordIOError("record length line too long")
                    return records
                header = bytes(self._pending[:newline]).strip()
                if not header.isdigit():
                    raise RecordIOError(f"bad record length {header[:20]!r}")
                self._want = int(header)
                if self._want > self._max:
                    raise RecordIOError(f"record of {self._want} bytes exceeds {self._max}")
                del self._pending[:newline + 1]
            if len(self._pending) < self._want:
                return records
            records.append(bytes(self._pending[:self._want]))
            del self._pending[:self._want]
            self._want = None
