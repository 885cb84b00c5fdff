"""The spool's file format without a database: frames round trip, a cut or damaged tail is
left out, the backlog is counted from the headers, and the locks tell live owners from dead."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from serving.monitoring.predlog import spool


def appended(folder: Path, *frames: tuple[bytes, int, int]) -> tuple[spool.Appender, Path]:
    """An appender with these (body, rows, requests) frames, one write each."""
    appender = spool.Appender(folder, "host-1-abcd", "host:1")
    for index, (body, rows, requests) in enumerate(frames):
        appender.append([spool.encode_frame(body, rows, requests, 1000.0 + index)], 1000.0)
    return appender, folder / spool.segment_name("host-1-abcd", 1)


def read_all(path: Path, position: int = 0) -> list[spool.Frame]:
    fd = os.open(path, os.O_RDONLY)
    try:
        frames: list[spool.Frame] = []
        while batch := spool.read_frames(fd, position, 1_000_000):
            frames += batch
            position = batch[-1].end
        return frames
    finally:
        os.close(fd)


def test_frames_come_back_in_order_after_the_segment_header(tmp_path: Path) -> None:
    appender, path = appended(tmp_path, (b"first", 1, 1), (b"second" * 1000, 1000, 1))
    header, *frames = read_all(path)
    assert header.requests == 0
    assert msgspec.msgpack.decode(header.body, type=spool.SegmentHeader).worker == "host:1"
    assert [(f.body, f.rows, f.requests, f.ts) for f in frames] == [
        (b"first", 1, 1, 1000.0),
        (b"second" * 1000, 1000, 1, 1001.0),
    ]
    assert frames[-1].end == path.stat().st_size
    # Reading on from a frame's end gives the frames after it.
    assert read_all(path, frames[0].end) == frames[1:]
    assert spool.pending(path, frames[0].end) == spool.Pending(
        1000, path.stat().st_size - frames[0].end, 1001.0
    )
    assert appender.close() is False  # its segment is still there: the lock file stays


def test_one_write_per_append_and_ends_per_frame(tmp_path: Path) -> None:
    appender, path = appended(tmp_path, (b"first", 1, 1))
    frames = [spool.encode_frame(b"x" * n, n, 1, 5.0) for n in (10, 20, 30)]
    start = path.stat().st_size
    ends = appender.append(frames, 5.0)
    assert ends == [
        (1, start + 10 + spool.HEADER_BYTES),
        (1, start + 30 + 2 * spool.HEADER_BYTES),
        (1, start + 60 + 3 * spool.HEADER_BYTES),
    ]
    assert [f.rows for f in read_all(path)[2:]] == [10, 20, 30]


def test_a_frame_cut_short_is_left_out_until_it_is_whole(tmp_path: Path) -> None:
    _, path = appended(tmp_path, (b"whole", 1, 1), (b"cut short" * 10, 7, 1))
    size = path.stat().st_size
    os.truncate(path, size - 5)  # a worker killed in the middle of its write
    frames = read_all(path)
    assert [f.body for f in frames[1:]] == [b"whole"]
    assert spool.pending(path, 0).rows == 1  # only whole frames count
    fd = os.open(path, os.O_RDONLY)
    try:
        assert spool.rows_at(fd, frames[-1].end) == 7  # what the cut frame held
    finally:
        os.close(fd)


def test_damaged_bytes_are_refused_not_read(tmp_path: Path) -> None:
    _, path = appended(tmp_path, (b"good", 1, 1), (b"damaged", 1, 1))
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF  # a flipped byte in the last body: its checksum fails
    path.write_bytes(bytes(data))
    fd = os.open(path, os.O_RDONLY)
    try:
        first = spool.read_frames(fd, 0, 10)
        assert [f.body for f in first] == [first[0].body, b"good"]
        with pytest.raises(spool.SpoolCorruptError, match="checksum"):
            spool.read_frames(fd, first[-1].end, 10)
        with pytest.raises(spool.SpoolCorruptError, match="no frame"):
            spool.read_frames(fd, 3, 10)  # not where a frame starts
    finally:
        os.close(fd)


def test_a_full_segment_is_followed_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool, "SEGMENT_BYTES", 1000)
    appender, _ = appended(tmp_path, (b"first", 0, 1))
    ends = [appender.append([spool.encode_frame(b"y" * 400, 1, 1, 1.0)], 1.0)[0] for _ in range(5)]
    assert [seq for seq, _ in ends] == [1, 1, 1, 2, 2]
    assert spool.segments(tmp_path) == {"host-1-abcd": [1, 2]}
    assert spool.backlog(tmp_path, {}).rows == 5
    first = spool.segment_name("host-1-abcd", 1)
    assert spool.backlog(tmp_path, {first: ends[2][1]}).rows == 2  # the first segment is read
    assert spool.disk_use(tmp_path) == sum(p.stat().st_size for p in tmp_path.glob("*.spool"))


def test_a_lock_is_held_while_its_owner_runs_and_free_after(tmp_path: Path) -> None:
    appender, path = appended(tmp_path, (b"a", 1, 1))
    lock = spool.lock_path(tmp_path, "host-1-abcd")
    assert not spool.lock_is_free(lock)
    assert spool.try_lock(lock) is None
    path.unlink()  # a writer read it all
    assert appender.close() is True  # nothing left: the lock file goes too
    assert not lock.exists()
    assert spool.lock_is_free(lock)


def test_a_frame_larger_than_one_read_comes_back_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool, "READ_BYTES", 64)
    _, path = appended(tmp_path, (b"z" * 500, 1, 1), (b"w" * 10, 1, 1))
    assert [f.body for f in read_all(path)[1:]] == [b"z" * 500, b"w" * 10]
