"""Hand-built tar members match tarfile byte for byte; the strict reader names every truncation."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from augmentgen.shards.tario import iter_tar, tar_end, tar_header, tar_headers, tar_member, walk_tar


def _tarfile_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode, ti.uname, ti.gname = len(data), 0, 0o444, "", ""
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _ours(members: list[tuple[str, bytes]]) -> bytes:
    body = b"".join(tar_member(n, d) for n, d in members)
    return body + tar_end(len(body))


@given(
    st.lists(
        st.tuples(st.text("abcdef0123456789-._", min_size=1, max_size=100), st.binary(max_size=1500)),
        min_size=0,
        max_size=5,
    )
)
@settings(max_examples=40, deadline=None)
def test_archives_equal_tarfile_ustar_bytes(members: list[tuple[str, bytes]]) -> None:
    assert _ours(members) == _tarfile_bytes(members)


def test_reader_round_trip_and_tarfile_pax_long_names() -> None:
    members = [("000000-000001.cls", b"3"), ("000000-000001.image.png", bytes(range(256)) * 3)]
    assert list(iter_tar(io.BytesIO(_ours(members)))) == members
    buf = io.BytesIO()
    long_name = "dir/" + "x" * 150 + ".json"
    with tarfile.open(fileobj=buf, mode="w") as tf:  # default PAX format: long names go in extended headers
        for name, data in [(long_name, b"{}"), ("é.cls", b"1")]:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    assert list(iter_tar(io.BytesIO(buf.getvalue()))) == [(long_name, b"{}"), ("é.cls", b"1")]


def test_truncation_anywhere_is_an_error_naming_the_last_member() -> None:
    data = _ours([("a.cls", b"1"), ("a.json", b"x" * 700), ("b.cls", b"2")])
    payload_end = 512 * 6  # three headers + 1 + 2 + 1 data blocks
    for cut in list(range(0, payload_end, 97)) + [payload_end, payload_end + 511]:
        with pytest.raises(ValueError, match="truncated") as err:
            list(iter_tar(io.BytesIO(data[:cut]), where="x.tar"))
        assert "x.tar" in str(err.value)
    with pytest.raises(ValueError, match=r"member 'a.json' is truncated \(300 of 700 bytes\)"):
        list(iter_tar(io.BytesIO(data[: 512 * 3 + 300])))


def test_corrupt_header_is_a_checksum_error() -> None:
    data = bytearray(_ours([("a.cls", b"1"), ("b.cls", b"2")]))
    data[1024 + 5] ^= 0xFF  # second header's name
    with pytest.raises(ValueError, match=r"checksum mismatch\) after member 'a.cls'"):
        list(iter_tar(io.BytesIO(bytes(data))))


def test_a_zeroed_header_or_joined_tars_are_errors_not_a_shorter_archive() -> None:
    """tarfile stops at the first zero block and reads the rest as gone; the strict reader refuses."""
    data = _ours([("a.cls", b"1"), ("b.cls", b"2"), ("c.cls", b"3")])
    zeroed = data[:1024] + bytes(512) + data[1536:]  # b.cls's header overwritten with zeros
    with tarfile.open(fileobj=io.BytesIO(zeroed)) as tf:
        assert tf.getnames() == ["a.cls"]  # what tarfile (and webdataset) make of it
    for check in (lambda b: list(iter_tar(io.BytesIO(b), "x.tar")), lambda b: walk_tar(io.BytesIO(b), "x.tar")):
        with pytest.raises(ValueError, match=r"x.tar: data after the end-of-archive marker .*member 'a.cls'"):
            check(zeroed)
        with pytest.raises(ValueError, match=r"joined end to end"):
            check(data + data)
        past = len(data) - 3 * 1024 - 512 + 7  # the record's padding, then 7 zeros, then the stray byte
        with pytest.raises(ValueError, match=rf"after the end-of-archive marker \({past} bytes past"):
            check(data + bytes(7) + b"x")
    assert list(iter_tar(io.BytesIO(data + bytes(4096)))) == [("a.cls", b"1"), ("b.cls", b"2"), ("c.cls", b"3")]


@given(
    st.lists(st.tuples(st.text("abc.", min_size=1, max_size=120), st.binary(max_size=900)), max_size=4),
    st.data(),
)
@settings(max_examples=60, deadline=None)
def test_walking_the_headers_agrees_with_reading_the_members(members: list[tuple[str, bytes]], draw: st.DataObject) -> None:
    """walk_tar (headers and seeks) accepts and refuses exactly what iter_tar (every byte) does."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:  # PAX: names over 100 bytes get extended headers
        for name, blob in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(blob)
            tf.addfile(ti, io.BytesIO(blob))
    data = bytearray(buf.getvalue())
    assert walk_tar(io.BytesIO(bytes(data))) == len(list(iter_tar(io.BytesIO(bytes(data))))) == len(members)
    how = draw.draw(st.sampled_from(["cut", "zero", "flip"]))
    at = draw.draw(st.integers(0, len(data) - 1))
    if how == "cut":
        data = data[:at]
    elif how == "zero":
        at -= at % 512
        data[at : at + 512] = bytes(512)
    else:
        data[at] ^= 1 + draw.draw(st.integers(0, 254))

    def outcome(fn: object) -> str:
        try:
            fn()  # type: ignore[operator]
            return "ok"
        except ValueError as e:
            return str(e).split(":")[1].split("(")[0].strip()

    full = outcome(lambda: list(iter_tar(io.BytesIO(bytes(data)))))
    walk = outcome(lambda: walk_tar(io.BytesIO(bytes(data))))
    assert (full == "ok") == (walk == "ok"), (how, at, full, walk)


def test_header_rejects_long_names() -> None:
    with pytest.raises(ValueError, match="1..100 bytes"):
        tar_header("n" * 101, 1)
    assert len(tar_header("n" * 100, 0)) == 512


@given(
    st.lists(
        st.tuples(st.text("abcdef0123456789-._é", min_size=1, max_size=50), st.integers(0, 8**11 - 1)),
        min_size=0,
        max_size=30,
    )
)
@settings(max_examples=60, deadline=None)
def test_headers_built_at_once_equal_one_by_one(members: list[tuple[str, int]]) -> None:
    names = [n.encode() for n, _ in members]
    sizes = [s for _, s in members]
    assert tar_headers(names, sizes) == b"".join(tar_header(n, s) for n, s in members)


def test_headers_at_once_reject_what_a_header_cannot_hold() -> None:
    with pytest.raises(ValueError, match="1..100 bytes, got 101"):
        tar_headers([b"ok", b"n" * 101], [1, 1])
    with pytest.raises(ValueError, match="1..100 bytes, got 0"):
        tar_headers([b""], [1])
    with pytest.raises(ValueError, match=f"size {8**11} does not fit"):
        tar_headers([b"a", b"b"], [1, 8**11])
    with pytest.raises(ValueError, match="2 names but 1 sizes"):
        tar_headers([b"a", b"b"], [1])
    assert len(tar_headers([b"n" * 100], [0])) == 512
