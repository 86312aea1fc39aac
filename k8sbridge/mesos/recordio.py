"""RecordIO framing of Mesos streaming responses: ``<decimal length>\\n<length bytes>``...

Why incremental: HTTP chunk boundaries never line up with records, so the decoder buffers bytes
and returns whole records as soon as they are complete. It never trusts the peer: a bad length
header, a zero length or an oversized record raises ``RecordIOError`` instead of buffering
without bound. Shared by the scheduler client and the embedded master (which encodes).
"""

from __future__ import annotations

from k8sbridge.mesos.errors import RecordIOError

__all__ = ["DEFAULT_MAX_RECORD_SIZE", "Decoder", "RecordIOError", "encode"]

DEFAULT_MAX_RECORD_SIZE = 64 * 1024 * 1024  # 64 MiB: a huge OFFERS event, far below memory limits
_MAX_HEADER_DIGITS = 20  # a uint64 has at most 20 decimal digits


def encode(record: bytes) -> bytes:
    """Frame one record. Mesos never sends an empty record, so neither do we."""
    if not record:
        raise RecordIOError("cannot encode an empty record")
    return str(len(record)).encode("ascii") + b"\n" + record


class Decoder:
    """Incremental RecordIO decoder: ``feed`` bytes, get back the records completed by them.

    After an error the decoder is poisoned (every further ``feed`` raises): the stream position
    is unknown, so the only safe recovery is a new connection.
    """

    __slots__ = ("_buffer", "_failed", "_max_record_size", "_pending")

    def __init__(self, *, max_record_size: int = DEFAULT_MAX_RECORD_SIZE) -> None:
        if max_record_size <= 0:
            raise ValueError("max_record_size must be positive")
        self._max_record_size = max_record_size
        self._buffer = bytearray()
        self._pending: int | None = None  # length of the record being read, once its header is in
        self._failed: RecordIOError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a record (non-zero at EOF = truncated)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        if self._failed is not None:
            raise RecordIOError(f"decoder already failed: {self._failed}") from self._failed
        try:
            return self._feed(data)
        except RecordIOError as e:
            self._failed = e
            raise

    def _feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        records: list[bytes] = []
        while True:
            if self._pending is None:
                newline = self._buffer.find(b"\n")
                if newline < 0:
                    if len(self._buffer) > _MAX_HEADER_DIGITS:
                        raise RecordIOError(
                            f"no record length within {_MAX_HEADER_DIGITS} bytes: "
                            f"{bytes(self._buffer[:_MAX_HEADER_DIGITS])!r}"
                        )
                    return records
                header = bytes(self._buffer[:newline])
                if not header or len(header) > _MAX_HEADER_DIGITS or not header.isdigit():
                    raise RecordIOError(f"bad record length header {header[:40]!r}")
                length = int(header)
                if length == 0:
                    raise RecordIOError("record length 0 (Mesos never sends empty records)")
                if length > self._max_record_size:
                    raise RecordIOError(
                        f"record of {length} bytes exceeds the limit of {self._max_record_size}"
                    )
                del self._buffer[: newline + 1]
                self._pending = length
            if len(self._buffer) < self._pending:
                return records
            records.append(bytes(self._buffer[: self._pending]))
            del self._buffer[: self._pending]
            self._pending = None
