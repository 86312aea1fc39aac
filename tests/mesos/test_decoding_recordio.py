"""RecordIO framing: round trips under any chunking, and every malformed stream is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.mesos import errors, recordio

records_st = st.lists(st.binary(min_size=1, max_size=300), min_size=0, max_size=20)


@settings(max_examples=200, deadline=None)
@given(records=records_st, data=st.data())
def test_any_chunk_split_gives_back_the_same_records(
    records: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(recordio.encode(r) for r in records)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30)))
    decoder = recordio.Decoder()
    out: list[bytes] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        out.extend(decoder.feed(stream[prev:cut]))
        prev = cut
    assert out == records
    assert decoder.buffered == 0


def test_the_documented_example_decodes() -> None:
    decoder = recordio.Decoder()
    assert decoder.feed(b'20\n{"type":"HEARTBEAT"}') == [b'{"type":"HEARTBEAT"}']


def test_a_record_split_byte_by_byte_arrives_once_complete() -> None:
    decoder = recordio.Decoder()
    frame = recordio.encode(b"hello")
    got = [decoder.feed(frame[i : i + 1]) for i in range(len(frame))]
    assert got[:-1] == [[]] * (len(frame) - 1)
    assert got[-1] == [b"hello"]


def test_a_stream_cut_mid_record_leaves_bytes_buffered() -> None:
    decoder = recordio.Decoder()
    assert decoder.feed(b"10\nabc") == []
    assert decoder.buffered == 3


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(b"abc\nxyz", id="not-a-number"),
        pytest.param(b"-5\nxyz", id="negative"),
        pytest.param(b"\nxyz", id="empty-header"),
        pytest.param(b"0\n", id="zero-length"),
        pytest.param(b" 5\nhello", id="space"),
        pytest.param(b"9" * 25, id="no-newline-in-time"),
        pytest.param(b"999999999999999999999999\n", id="too-many-digits"),
    ],
)
def test_a_bad_length_header_is_refused(stream: bytes) -> None:
    decoder = recordio.Decoder()
    with pytest.raises(errors.RecordIOError):
        decoder.feed(stream)
    with pytest.raises(errors.RecordIOError, match="already failed"):
        decoder.feed(b"5\nhello")


def test_a_record_over_the_limit_is_refused_before_buffering_it() -> None:
    decoder = recordio.Decoder(max_record_size=10)
    assert decoder.feed(b"10\n0123456789") == [b"0123456789"]
    with pytest.raises(errors.RecordIOError, match="exceeds the limit"):
        decoder.feed(b"11\n")


def test_an_empty_record_cannot_be_encoded() -> None:
    with pytest.raises(errors.RecordIOError):
        recordio.encode(b"")


def test_record_io_error_is_a_mesos_error() -> None:
    assert issubclass(recordio.RecordIOError, errors.MesosError)
