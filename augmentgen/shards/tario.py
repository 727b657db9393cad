"""Tar bytes by hand: reproducible ustar members to write, and a strict reader that names truncation.

Writing: ``tar_member(name, data)`` is the same bytes ``tarfile`` writes for a ustar member
with mode 0444, uid/gid 0, empty user/group names and a fixed mtime, built several times
faster (no TarInfo object per member). Reading: ``iter_tar`` checks every header checksum,
every member's length, the end-of-archive marker and that only zeros follow it, so a shard cut
short or with a zeroed header anywhere is an error naming the last whole member, where
``tarfile`` silently stops at a header boundary or at the first zero block; ``walk_tar`` makes
the same checks without reading the members' data.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

BLOCK = 512
RECORD = 20 * BLOCK  # tarfile pads archives to whole records; so do we, for identical bytes
MTIME = 0  # fixed modification time: the same shard bytes whenever and wherever it is written
_ZERO_BLOCK = bytes(BLOCK)


def _octal(value: int, width: int) -> bytes:
    return b"%0*o" % (width - 1, value) + b"\0"


# Everything after the name and before the checksum except the size, then the rest of the block.
_MODE_IDS = _octal(0o444, 8) + _octal(0, 8) + _octal(0, 8)
_MTIME = _octal(MTIME, 12)
_AFTER_CHKSUM = (
    b"0"  # typeflag: regular file
    + bytes(100)  # linkname
    + b"ustar\x0000"  # magic + version
    + bytes(32)  # uname
    + bytes(32)  # gname
    + bytes(16)  # devmajor, devminor: left empty for regular files, as tarfile does
    + bytes(155)  # prefix
    + bytes(12)  # pad to 512
)
_STATIC_SUM = sum(_MODE_IDS) + sum(_MTIME) + 8 * ord(" ") + sum(_AFTER_CHKSUM)


def tar_header(name: str, size: int) -> bytes:
    """The 512-byte ustar header of a regular file ``name`` of ``size`` bytes.

    Example:
        >>> len(tar_header("0001.cls", 1))
        512
    """
    nb = name.encode("utf-8")
    if not nb or len(nb) > 100:
        raise ValueError(f"tar member name must be 1..100 bytes, got {len(nb)}: {name!r}")
    if size < 0 or size >= 8**11:
        raise ValueError(f"tar member {name!r}: size {size} does not fit a ustar header")
    size_field = _octal(size, 12)
    chksum = _STATIC_SUM + sum(nb) + sum(size_field)
    return b"".join(
        (nb, bytes(100 - len(nb)), _MODE_IDS, size_field, _MTIME, b"%06o\0 " % chksum, _AFTER_CHKSUM)
    )


# The header of every member with an empty name and size and the checksum field as spaces (how it is summed).
_TEMPLATE = np.frombuffer(
    bytes(100) + _MODE_IDS + bytes(12) + _MTIME + b" " * 8 + _AFTER_CHKSUM, dtype=np.uint8
)
_TEMPLATE_SUM = int(_TEMPLATE.sum(dtype=np.int64))
_SIZE_SHIFTS = np.arange(30, -1, -3, dtype=np.int64)  # 11 octal digits, most significant first
_SUM_SHIFTS = np.arange(15, -1, -3, dtype=np.int64)  # 6 octal digits


def tar_headers(names: list[bytes], sizes: list[int]) -> bytes:
    """The ustar headers of many members at once, back to back (``len(names) * 512`` bytes).

    Byte for byte ``b"".join(tar_header(n, s) for ...)``, built with a few array operations
    instead of Python work per member: what keeps a shard of small images cheap to assemble.

    Example:
        >>> tar_headers([b"a.cls", b"a.json"], [1, 20]) == tar_header("a.cls", 1) + tar_header("a.json", 20)
        True
    """
    m = len(names)
    if len(sizes) != m:
        raise ValueError(f"tar_headers: {m} names but {len(sizes)} sizes")
    if m == 0:
        return b""
    longest = max(map(len, names))
    if longest > 100 or not min(map(len, names)):
        bad = next(n for n in names if not n or len(n) > 100)
        raise ValueError(f"tar member name must be 1..100 bytes, got {len(bad)}: {bad!r}")
    size = np.asarray(sizes, dtype=np.int64)
    if size.min() < 0 or size.max() >= 8**11:
        bad_size = int(size[(size < 0) | (size >= 8**11)][0])
        raise ValueError(f"tar member size {bad_size} does not fit a ustar header")
    hdr = np.empty((m, BLOCK), dtype=np.uint8)
    hdr[:] = _TEMPLATE
    hdr[:, :longest] = np.frombuffer(b"".join(n.ljust(longest, b"\0") for n in names), np.uint8).reshape(
        m, longest
    )
    digits = ((size[:, None] >> _SIZE_SHIFTS) & 7) + 48
    hdr[:, 124:135] = digits
    # the checksum: the template's fixed bytes, plus the name's and the size's
    chksum = _TEMPLATE_SUM + hdr[:, :longest].sum(axis=1, dtype=np.int64) + digits.sum(axis=1)
    hdr[:, 148:154] = ((chksum[:, None] >> _SUM_SHIFTS) & 7) + 48
    hdr[:, 154] = 0  # then the space already there
    return hdr.tobytes()


def tar_member(name: str, data: bytes) -> bytes:
    """Header, data and zero padding to a whole block.

    Example:
        >>> len(tar_member("a.cls", b"3"))
        1024
    """
    pad = -len(data) % BLOCK
    return b"".join((tar_header(name, len(data)), data, bytes(pad)))


def tar_end(offset: int) -> bytes:
    """End-of-archive marker (two zero blocks) and padding to a whole record, for a tar of ``offset`` bytes."""
    end = offset + 2 * BLOCK
    return bytes(2 * BLOCK + (-end % RECORD))


def _parse_number(field: bytes, where: str) -> int:
    if field and field[0] & 0x80:  # GNU base-256 for large values
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise ValueError(f"{where}: bad number field {field!r} in a tar header") from None


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = f.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _pax_path(data: bytes) -> str | None:
    path = None
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0:
            break
        length = int(data[pos:sp])
        rec = data[sp + 1 : pos + length - 1]
        key, _, value = rec.partition(b"=")
        if key == b"path":
            path = value.decode("utf-8", "surrogateescape")
        pos += length
    return path


def _parse_header(hdr: bytes, where: str, last: str) -> tuple[str, int, bytes]:
    """``(name, size, typeflag)`` of a 512-byte header whose checksum holds, else a ValueError."""
    stored = _parse_number(hdr[148:156], where)
    if stored != sum(hdr[:148]) + 8 * ord(" ") + sum(hdr[156:]):
        raise ValueError(f"{where}: corrupt tar header (checksum mismatch) after member {last!r}")
    name = hdr[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    if hdr[257:262] == b"ustar":
        prefix = hdr[345:500].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        if prefix:
            name = f"{prefix}/{name}"
    return name, _parse_number(hdr[124:136], where), hdr[156:157]


def _only_zeros_after(f: BinaryIO, where: str, last: str) -> None:
    """After the first zero block a tar holds only zeros (its end marker and record padding).

    ``tarfile`` (so webdataset) and GNU tar stop at the first zero block: a member header
    overwritten with zeros would end the archive there and lose every member after it without
    a word. Anything but zeros after it is that, or tars joined with ``cat``, and is named.
    """
    seen = 0
    while True:
        chunk = f.read(1 << 16)
        if not chunk:
            return
        if chunk.strip(b"\0"):
            at = seen + len(chunk) - len(chunk.lstrip(b"\0"))
            raise ValueError(
                f"{where}: data after the end-of-archive marker ({at} bytes past the zero block that "
                f"follows member {last!r}): a member header was zeroed, or tars were joined end to end"
            )
        seen += len(chunk)


def _next_header(f: BinaryIO, where: str, last: str) -> tuple[str, int, bytes] | None:
    """The next member's ``(name, size, typeflag)``, or None at a whole end-of-archive (zeros to the end)."""
    hdr = _read_exact(f, BLOCK)
    if len(hdr) < BLOCK:
        what = "ends" if not hdr else f"has a {len(hdr)}-byte partial header"
        raise ValueError(f"{where}: truncated, the archive {what} after member {last!r} (no end marker)")
    if hdr == _ZERO_BLOCK:
        _only_zeros_after(f, where, last)
        return None
    return _parse_header(hdr, where, last)


def walk_tar(f: BinaryIO, where: str = "tar") -> int:
    """Check a whole tar without reading its members' data: every header, every length, the end.

    The same checks as ``iter_tar`` (header checksums, members and padding present in full, the
    end-of-archive marker, nothing but zeros after it) at the cost of one 512-byte read and a
    seek a member. Returns the number of regular-file members.

    Example:
        >>> import io
        >>> walk_tar(io.BytesIO(tar_member("k.cls", b"1") + tar_end(1024)))
        1
    """
    end = f.seek(0, 2)
    pos = f.seek(0)
    last, count = "(none: first member)", 0
    while True:
        head = _next_header(f, where, last)
        if head is None:
            return count
        name, size, typeflag = head
        pos += BLOCK + size + (-size % BLOCK)
        if pos > end:
            raise ValueError(f"{where}: member {name!r} is truncated (the file ends inside it or its padding)")
        f.seek(pos)
        if typeflag in (b"0", b"\0", b"7"):
            last, count = name, count + 1


def iter_tar(f: BinaryIO, where: str = "tar") -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, data)`` of every regular file in a tar stream, strictly.

    Raises ValueError naming ``where`` and the last whole member when a header checksum is
    wrong, a member is cut short, or the end-of-archive marker is missing.

    Example:
        >>> import io
        >>> list(iter_tar(io.BytesIO(tar_member("k.cls", b"1") + tar_end(1024))))
        [('k.cls', b'1')]
    """
    last = "(none: first member)"
    long_name: str | None = None
    while True:
        head = _next_header(f, where, last)
        if head is None:
            return
        name, size, typeflag = head
        data = _read_exact(f, size)
        if len(data) < size:
            raise ValueError(f"{where}: member {name!r} is truncated ({len(data)} of {size} bytes)")
        pad = -size % BLOCK
        if pad and len(_read_exact(f, pad)) < pad:
            raise ValueError(f"{where}: truncated in the padding of member {name!r} (no end marker)")
        if typeflag == b"x":
            long_name = _pax_path(data) or long_name
            continue
        if typeflag == b"L":
            long_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
            continue
        if typeflag == b"g":
            continue
        if long_name is not None:
            name, long_name = long_name, None
        if typeflag in (b"0", b"\0", b"7"):
            last = name
            yield name, data
