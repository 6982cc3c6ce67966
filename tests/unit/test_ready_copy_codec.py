"""The ready copy's codec: Zstandard frames written, zlib copies from before still read, and a damaged
body or an unknown codec refused with a ValueError (the rollback then decodes the rows instead)."""

from __future__ import annotations

import zlib

import pytest

from app.storage import ready_copy

TEXT = '{"rows":[{"item":"FG-1","week":"2027-W01","demand":12.5}]}\n' * 200


def test_a_copy_is_a_zstandard_frame_that_gives_the_text_back():
    body = ready_copy.compress(TEXT)
    assert ready_copy.CODEC == "zstd"
    assert body[:4] == b"\x28\xb5\x2f\xfd"  # the Zstandard frame magic number
    assert len(body) < len(TEXT) / 20
    assert ready_copy.decompress("zstd", body) == TEXT.encode()
    assert ready_copy.decompress("zstd", ready_copy.compress(TEXT.encode())) == TEXT.encode()


def test_a_zlib_copy_from_before_is_read():
    assert ready_copy.decompress("zlib", zlib.compress(TEXT.encode(), 4)) == TEXT.encode()


@pytest.mark.parametrize(
    ("codec", "body", "message"),
    [
        ("zstd", ready_copy.compress(TEXT)[:-9], "damaged ready copy"),
        ("zstd", b"not a frame at all", "damaged ready copy"),
        ("zlib", b"not zlib", "damaged ready copy"),
        ("lz4", b"whatever", "unknown ready copy codec 'lz4'"),
    ],
)
def test_a_damaged_body_or_an_unknown_codec_is_a_value_error(codec, body, message):
    with pytest.raises(ValueError, match=message):
        ready_copy.decompress(codec, body)
