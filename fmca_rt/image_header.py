"""An image's width and height read from its file header, so an oversized image (a decompression bomb: a
1 MB PNG can hold 20000 x 20000 pixels, gigabytes once decoded) is refused before any decoding.

Covers every format OpenCV's PyPI wheels decode by default: PNG, JPEG (baseline and progressive), BMP, WebP
(lossy, lossless, extended), TIFF (first image), GIF, PNM and PFM, Sun raster, Radiance HDR, AVIF (its
`ispe` box) and JPEG 2000 (JP2 and raw codestream). Anything else returns None; OpenCV's own pixel limit
(OPENCV_IO_MAX_IMAGE_PIXELS, 2^30 by default) still bounds it.
"""

from __future__ import annotations

import re
import struct

# JPEG start-of-frame markers (the ones that carry the image size): C0-CF except DHT, JPG and DAC
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PNM = re.compile(rb"P[1-6Ff](?:\s+|#[^\n]*\n)+(\d+)(?:\s+|#[^\n]*\n)+(\d+)")  # PBM/PGM/PPM and PFM
_HDR_SIZE = re.compile(rb"\n\n[-+][YX] (\d+) [-+]([YX]) (\d+)\n")  # Radiance: "-Y height +X width" after the header


def _png(data: bytes):
    if data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    return None


def _jpeg(data: bytes):
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD9:  # markers without a length
            position += 2
            continue
        length = struct.unpack(">H", data[position + 2:position + 4])[0]
        if marker in _JPEG_SOF and position + 9 <= len(data):
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return width, height
        if marker == 0xDA:  # start of scan before any frame header: malformed
            return None
        position += 2 + length
    return None


def _bmp(data: bytes):
    if len(data) < 26:
        return None
    if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)


def _webp(data: bytes):
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _tiff(data: bytes):
    order = "<" if data[:2] == b"II" else ">"
    if struct.unpack(order + "H", data[2:4])[0] != 42:  # 43 is BigTIFF: not read here
        return None
    offset = struct.unpack(order + "I", data[4:8])[0]
    if offset + 2 > len(data):
        return None
    count = struct.unpack(order + "H", data[offset:offset + 2])[0]
    size = {}
    for entry in range(offset + 2, min(offset + 2 + 12 * count, len(data) - 11), 12):
        tag, kind = struct.unpack(order + "HH", data[entry:entry + 4])
        if tag in (256, 257) and kind in (3, 4):
            size[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), data[entry + 8:entry + (10 if kind == 3 else 12)])[0]
    return (size[256], size[257]) if len(size) == 2 else None


def _hdr(data: bytes):
    match = _HDR_SIZE.search(data[:65536])
    if not match:
        return None
    first, second = int(match.group(1)), int(match.group(3))
    return (first, second) if match.group(2) == b"Y" else (second, first)  # "-Y h +X w" is the usual order


def _avif(data: bytes):
    box = data.find(b"ispe", 0, 65536)  # image spatial extents: version/flags, width, height
    return struct.unpack(">II", data[box + 8:box + 16]) if box >= 4 else None


def _jpeg2000(data: bytes):
    if data.startswith(b"\xff\x4f\xff\x51"):  # raw codestream: SIZ marker segment first
        width, height, x_offset, y_offset = struct.unpack(">IIII", data[8:24])
        return width - x_offset, height - y_offset
    box = data.find(b"ihdr", 0, 65536)  # JP2: image header box, height before width
    if box < 4:
        return None
    height, width = struct.unpack(">II", data[box + 4:box + 12])
    return width, height


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an encoded image's header; None for a format not read here or a damaged header."""
    data = bytes(data[:1 << 20]) if len(data) > 1 << 20 else bytes(data)  # every header sits in the first MB
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg(data)
        if data.startswith(b"BM"):
            return _bmp(data)
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            return _webp(data)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff(data)
        if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
            return struct.unpack("<HH", data[6:10])
        if match := _PNM.match(data[:1024]):
            return int(match.group(1)), int(match.group(2))
        if data.startswith(b"\x59\xa6\x6a\x95"):  # Sun raster
            return struct.unpack(">II", data[4:12])
        if data.startswith((b"#?RADIANCE", b"#?RGBE")):
            return _hdr(data)
        if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis", b"mif1"):
            return _avif(data)
        if data.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
            return _jpeg2000(data)
    except struct.error:
        return None
    return None
