"""The converter's fast paths give exactly what the plain paths give (PNG decoding, labelling, RLE, YOLO text)."""

from __future__ import annotations

import importlib.util
import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from pycocotools import mask as mask_utils

from defectkit.converters import mask_to_instances
from defectkit.converters.instances import _components, box_to_instances, encode_rle
from defectkit.converters.png import decode_gray8
from defectkit.converters.worker import Job, process
from defectkit.converters.yolo import _fmt, _poly_line

# Without the optional libdeflate binding the decoder always declines (OpenCV decodes instead).
needs_deflate = pytest.mark.skipif(
    importlib.util.find_spec("deflate") is None, reason="deflate not installed"
)

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _png_pil(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", **kw)
    return buf.getvalue()


def _png_image(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _png_cv2(arr: np.ndarray, level: int, strategy: int) -> bytes:
    ok, enc = cv2.imencode(
        ".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, level, cv2.IMWRITE_PNG_STRATEGY, strategy]
    )
    assert ok
    return enc.tobytes()


def _reference(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)


def _blobs(seed: int, h: int, w: int) -> np.ndarray:
    """0/255 mask with a few discs and boxes (the runs and edges real masks have)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w), dtype=np.uint8)
    for _ in range(rng.integers(0, 4)):
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), int(rng.integers(1, max(2, min(h, w) // 2)))
        cv2.circle(out, (int(cx), int(cy)), r, 255, -1)
    if rng.random() < 0.5:
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        out[y : y + int(rng.integers(1, 9)), x : x + int(rng.integers(1, 9))] = 255
    return out


@needs_deflate
@PROPS
@given(st.integers(0, 10_000), st.integers(1, 70), st.integers(1, 70), st.integers(0, 9), st.integers(0, 4))
def test_decoder_matches_opencv_on_masks_from_both_writers(seed, h, w, level, strategy) -> None:
    arr = _blobs(seed, h, w)
    for data in (_png_pil(arr), _png_pil(arr, optimize=True), _png_cv2(arr, level, strategy)):
        got = decode_gray8(data)
        if got is not None:  # None only for the Average filter, which these writers rarely pick
            assert np.array_equal(got, _reference(data))


@needs_deflate
def test_decoder_takes_nearly_every_mask_both_writers_make() -> None:
    """The property test above allows declining; here the fast path must actually be the one taken."""
    rng = np.random.default_rng(0)
    taken = total = 0
    for seed in range(100):
        h, w, level, strategy = (
            int(v) for v in (*rng.integers(1, 71, 2), rng.integers(0, 10), rng.integers(0, 5))
        )
        arr = _blobs(seed, h, w)
        for data in (_png_pil(arr), _png_pil(arr, optimize=True), _png_cv2(arr, level, strategy)):
            got = decode_gray8(data)
            total += 1
            if got is not None:
                taken += 1
                assert np.array_equal(got, _reference(data))
    assert taken >= 0.95 * total, f"decoder declined {total - taken} of {total} masks"


@needs_deflate
@PROPS
@given(arrays(np.uint8, st.tuples(st.integers(1, 20), st.integers(1, 20))), st.integers(0, 9))
def test_decoder_matches_opencv_or_declines_on_any_grayscale(arr, level) -> None:
    data = _png_cv2(arr, level, 0)
    got = decode_gray8(data)
    assert got is None or np.array_equal(got, _reference(data))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _png_filtered(arr: np.ndarray, kinds: list[int]) -> bytes:
    """8-bit grayscale PNG whose row r uses filter ``kinds[r]`` (0 None .. 4 Paeth), by the spec."""
    h, w = arr.shape
    raw = bytearray()
    for r in range(h):
        row, up = arr[r].astype(int), (arr[r - 1].astype(int) if r else np.zeros(w, int))
        left, upleft = np.r_[0, row[:-1]], np.r_[0, up[:-1]]
        pred = {
            0: np.zeros(w, int),
            1: left,
            2: up,
            3: (left + up) // 2,
            4: np.array([_paeth(*t) for t in zip(left, up, upleft, strict=True)], dtype=int),
        }[kinds[r]]
        raw += bytes([kinds[r]]) + ((row - pred) % 256).astype(np.uint8).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )


@needs_deflate
@PROPS
@given(
    arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12))),
    st.lists(st.sampled_from([0, 1, 2, 4]), min_size=12, max_size=12),
    st.booleans(),
)
def test_decoder_undoes_each_row_filter_exactly(arr, kinds, as_mask) -> None:
    if as_mask:
        arr = np.where(arr > 127, 255, 0).astype(np.uint8)
    data = _png_filtered(arr, kinds)
    assert np.array_equal(decode_gray8(data), _reference(data))


@needs_deflate
def test_decoder_declines_the_average_filter() -> None:
    arr = _blobs(3, 12, 10)
    assert np.array_equal(decode_gray8(_png_filtered(arr, [4] * 12)), arr)
    assert decode_gray8(_png_filtered(arr, [4] * 6 + [3] + [4] * 5)) is None


def _chunks(data: bytes) -> dict[bytes, bytes]:
    out, pos = {}, 8
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        out[kind] = out.get(kind, b"") + data[pos + 8 : pos + 8 + n]
        pos += 12 + n
    return out


def _with_ihdr_byte(data: bytes, offset: int, value: int) -> bytes:
    """Change one IHDR byte (offset within its payload) and fix the chunk's CRC."""
    b = bytearray(data)
    b[16 + offset] = value
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))
    return bytes(b)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _relaid(data: bytes, middle: bytes | None, text_first: bool = False) -> bytes:
    """The same PNG with its image data in two IDAT chunks (``middle`` chunk between them), or a
    tEXt chunk before IHDR."""
    parts = _chunks(data)
    idat = parts[b"IDAT"]
    text = _chunk(b"tEXt", b"k\0v")
    ihdr = _chunk(b"IHDR", parts[b"IHDR"])
    body = _chunk(b"IDAT", idat[:10]) + (middle or b"") + _chunk(b"IDAT", idat[10:]) + _chunk(b"IEND", b"")
    return data[:8] + (text + ihdr if text_first else ihdr) + body


MASK = _blobs(5, 40, 30)
DECLINED = {
    "RGB": _png_pil(np.dstack([MASK] * 3)),
    "16-bit": _png_pil(MASK.astype(np.uint16) * 257),
    "palette": _png_image(Image.fromarray(MASK).convert("P")),
    "1-bit": _png_pil(MASK > 0),
    "transparency": _png_pil(MASK, transparency=0),
    "interlaced flag": _with_ihdr_byte(_png_pil(MASK), 12, 1),
    "bad IDAT crc": _png_pil(MASK)[:-13] + b"\0" + _png_pil(MASK)[-12:],
    "truncated": _png_pil(MASK)[:-20],
    "not a png": b"GIF89a" + bytes(40),
    "IDAT chunks split": _relaid(_png_pil(MASK), _chunk(b"tEXt", b"k\0v")),
    "IHDR not first": _relaid(_png_pil(MASK), None, text_first=True),
    "empty": b"",
}


@needs_deflate
def test_decoder_reads_image_data_split_over_idat_chunks() -> None:
    data = _relaid(_png_pil(MASK), None)
    assert np.array_equal(decode_gray8(data), MASK) and np.array_equal(_reference(data), MASK)


@pytest.mark.parametrize("name", sorted(DECLINED))
def test_decoder_declines_what_it_does_not_handle(name: str) -> None:
    assert decode_gray8(DECLINED[name]) is None


@PROPS
@given(arrays(bool, st.tuples(st.integers(1, 30), st.integers(1, 30)), elements=st.booleans()))
def test_components_match_opencv_statistics(mask: np.ndarray) -> None:
    box = mask.view(np.uint8)
    labels, stats = _components(box)
    n, ref_labels, ref_stats, _ = cv2.connectedComponentsWithStats(box, connectivity=8)
    assert np.array_equal(labels, ref_labels)
    assert stats == [tuple(int(v) for v in row) for row in ref_stats[1:n]]


@PROPS
@given(
    arrays(bool, st.tuples(st.integers(1, 20), st.integers(1, 20)), elements=st.booleans()),
    st.integers(0, 5),
    st.integers(0, 5),
    st.booleans(),
)
def test_instances_from_a_box_equal_the_full_mask_and_encode_exactly(mask, dx, dy, per_image) -> None:
    h, w = mask.shape
    full = np.zeros((h + dy + 3, w + dx + 2), dtype=bool)
    full[dy : dy + h, dx : dx + w] = mask
    insts, dropped = box_to_instances(mask, dx, dy, full.shape, min_area=2, per_image=per_image)
    assert (insts, dropped) == mask_to_instances(full, min_area=2, per_image=per_image)
    for inst in insts:
        x0, y0, x1, y1 = inst.bbox_xyxy
        own = np.zeros_like(full)
        own[y0:y1, x0:x1] = mask_utils.decode(
            {"size": list(full.shape), "counts": inst.rle["counts"].encode()}
        ).astype(bool)[y0:y1, x0:x1]
        assert inst.rle == encode_rle(own)  # same bytes as encoding the full-size mask


def test_full_height_and_full_image_instances_encode_exactly() -> None:
    for mask in (np.ones((7, 5), bool), np.pad(np.ones((7, 3), bool), ((0, 0), (1, 1)))):
        (inst,), _ = mask_to_instances(mask, min_area=1)
        assert inst.rle == encode_rle(mask)


@PROPS
@given(
    st.integers(1, 1200),
    st.integers(1, 1200),
    st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=3),
)
def test_yolo_text_of_centre_polygons_matches_the_general_formatting(width, height, points) -> None:
    """The table lookup writes what formatting each vertex's position would, and ultralytics' int32
    truncation of the text, denormalised, gives the (clipped) pixel of each vertex back."""
    from defectkit.converters.centre_polygons import outward_positions

    poly = [min(int(v * s), s - 1) for x, y in points for v, s in ((x, width), (y, height))]
    xy = np.reshape(poly, (-1, 2))
    # as traced (trace_centre_polygon keeps only the end points of straight runs): no vertex lies
    # on the line through its neighbours; such a middle vertex may merge into the run's ends
    d_in, d_out = xy - np.roll(xy, 1, axis=0), np.roll(xy, -1, axis=0) - xy
    assume(np.all(d_in[:, 0] * d_out[:, 1] - d_in[:, 1] * d_out[:, 0] != 0))
    pos = outward_positions(np.reshape(poly, (-1, 2)))
    assert _poly_line(3, poly, width, height) == f"3 {_fmt((pos / (width, height)).reshape(-1).tolist())}"
    back = np.array(_poly_line(3, poly, width, height).split()[1:], np.float32).reshape(-1, 2)
    pixels = (back * np.array([width, height], np.float32)).astype(np.int32)
    assert set(map(tuple, pixels.tolist())) == set(map(tuple, np.reshape(poly, (-1, 2)).tolist()))


def test_worker_reads_each_png_layout_to_the_same_instances(tmp_path) -> None:
    """The worker's decoder + box path and OpenCV + full-mask path agree on the same mask file."""
    arr = _blobs(7, 64, 48)
    arr[5, 5] = 100  # one non-binary pixel: counted, thresholded at >127
    results = []
    image = tmp_path / "img.png"
    image.write_bytes(b"x")
    layouts = (
        _png_pil(arr),
        _png_pil(arr, optimize=True),
        _png_cv2(arr, 9, 0),
        _png_pil(np.dstack([arr] * 3)),
    )
    for k, data in enumerate(layouts):  # the last one (RGB) goes through the general reader
        path = tmp_path / f"m{k}.png"
        path.write_bytes(data)
        r = process(Job("m", str(image), str(path), 48, 64, 1, 1, False, 0.45, False))
        results.append((r.instances, r.dropped, r.nonbinary))
    reference = (*mask_to_instances(arr > 127, min_area=1), 1)
    assert all(r == reference for r in results)
