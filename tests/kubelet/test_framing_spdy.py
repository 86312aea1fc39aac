"""The kubelet API's SPDY/3.1 framing and the resize stream's decoding, as pure functions:
header blocks survive a round trip through one compression context per direction, frames split
anywhere are reassembled, a frame over the limit or of another SPDY version is refused, and
resize JSON objects are read whatever the frame boundaries."""

from __future__ import annotations

import struct

import pytest

from k8sbridge.kubelet import api_spdy
from k8sbridge.kubelet.api_exec_spdy import resizes
from k8sbridge.kubelet.api_portforward_spdy import pair_id


def test_streams_and_data_survive_any_split() -> None:
    out = api_spdy.Writer()
    wire = (out.syn_stream(1, {"streamType": "error"})
            + out.syn_stream(3, {"streamType": "stdin", "X-Extra": "a"})
            + out.data(3, b"hello") + out.data(3, b"", fin=True) + out.goaway(3))
    for split in range(1, len(wire)):
        reader = api_spdy.Reader()
        frames = reader.feed(wire[:split]) + reader.feed(wire[split:])
        assert [(f.kind, f.stream) for f in frames] == [
            (api_spdy.SYN_STREAM, 1), (api_spdy.SYN_STREAM, 3), (0, 3), (0, 3),
            (api_spdy.GOAWAY, 3)]
        assert frames[0].headers == {"streamtype": "error"}
        assert frames[1].headers == {"streamtype": "stdin", "x-extra": "a"}
        assert frames[2].data == b"hello" and not frames[2].fin and frames[3].fin


def test_a_frame_over_the_limit_is_refused_from_its_header() -> None:
    with pytest.raises(api_spdy.FrameError, match="at most"):
        api_spdy.Reader().feed(struct.pack("!II", 1, api_spdy.MAX_DATA + 1))


def test_another_spdy_version_is_refused() -> None:
    with pytest.raises(api_spdy.FrameError, match="version 2"):
        api_spdy.Reader().feed(b"\x80\x02\x00\x01\x00\x00\x00\x04abcd")


def test_a_header_block_that_does_not_inflate_is_refused() -> None:
    body = struct.pack("!IIBB", 1, 0, 0, 0) + b"not zlib at all"
    frame = struct.pack("!HHI", 0x8003, api_spdy.SYN_STREAM, len(body)) + body
    with pytest.raises(api_spdy.FrameError, match="inflate"):
        api_spdy.Reader().feed(frame)


@pytest.mark.parametrize(("chunks", "sizes"), [
    ([b'{"Width":100,"Height":30}\n'], [(30, 100)]),
    ([b'{"Width":80,"Height":24}{"Width":1', b'00,"Height":30}'], [(24, 80), (30, 100)]),
    ([b'{"Width":"x"}\n{"Width":5,"Height":6}\n'], [(6, 5)]),
    ([b'{not json}\n{"Width":5,"Height":6}\n'], [(6, 5)]),
])
def test_resizes_whatever_the_frames(chunks: list[bytes], sizes: list[tuple[int, int]]) -> None:
    got: list[tuple[int, int]] = []
    left = b""
    for chunk in chunks:
        found, left = resizes(left + chunk)
        got += found
    assert got == sizes and left == b""


def test_port_forward_streams_without_a_request_id_pair_as_the_kubelet_guesses() -> None:
    assert pair_id("error", 1) == pair_id("data", 3) == "1"
    assert pair_id("error", 5) == pair_id("data", 7) == "5"
