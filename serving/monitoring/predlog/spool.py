"""The spool: every record goes to local disk first, into append-only segment files.

It stays there until the database has it. A worker's shipper appends its records (one write per
wake, never one per request); its writer process reads them back and inserts them at its own
pace, committing how far it read in the same transaction as the rows. A database that falls
behind, fails or is down makes a backlog on disk, not a loss; a writer or worker that dies
leaves its segments for the next writer.

The folder (``<data_dir>/prediction-log-spool``) holds, for each worker ("owner", a name no
other process ever takes):

- ``<owner>.lock``: locked (``flock``) by the worker and its writer, which inherits the
  descriptor, while either runs. A lock nobody holds means the owner is gone: a writer that
  takes it adopts the owner's segments.
- ``<owner>.<seq>.spool``: its segments, in order. The worker appends to the newest and starts
  the next at ``SEGMENT_BYTES``; a segment is finished once the next exists or its owner is gone.

A segment is a sequence of frames: a header (magic, body length, rows, requests, time, CRC-32 of
the body) and a msgpack body. The first frame (no requests) is a ``SegmentHeader``; the others
hold ``list[LoggedRequest]``. Imports msgspec only (the writer process uses it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Final, NamedTuple

import msgspec

FOLDER_NAME: Final = "prediction-log-spool"
SEGMENT_BYTES: Final = 8 * 1024 * 1024
"""A segment's size before the next is started: the writer deletes a segment only when it is
finished and read, so this is also how much disk read rows may keep per worker."""
READ_BYTES: Final = 4 * 1024 * 1024
_HEADER: Final = struct.Struct("<4sIIIdI")  # magic, body length, rows, requests, time, crc32
HEADER_BYTES: Final = _HEADER.size
_MAGIC: Final = b"DPL1"
_SUFFIX: Final = ".spool"
_LOCK_SUFFIX: Final = ".lock"
_SEGMENT_NAME: Final = re.compile(r"^(?P<owner>[\w.-]+)\.(?P<seq>\d{8})\.spool$")


class SegmentHeader(msgspec.Struct, array_like=True, frozen=True):
    """The first frame of a segment: who wrote it."""

    worker: str
    """The worker that answered (host:pid), stored in each of its rows."""
    created: float


class Frame(NamedTuple):
    """One frame read back from a segment."""

    end: int
    """The position right after it (where the next frame starts)."""
    rows: int
    requests: int
    ts: float
    """When the shipper spooled it (unix seconds)."""
    body: bytes


class SpoolCorruptError(Exception):
    """Bytes that are not a whole frame where a frame should start."""


def encode_frame(body: bytes, rows: int, requests: int, ts: float) -> bytes:
    """A frame: header and body."""
    return _HEADER.pack(_MAGIC, len(body), rows, requests, ts, zlib.crc32(body)) + body


def segment_name(owner: str, seq: int) -> str:
    """The file name of an owner's segment."""
    return f"{owner}.{seq:08d}{_SUFFIX}"


def lock_path(folder: Path, owner: str) -> Path:
    """The owner's lock file."""
    return folder / f"{owner}{_LOCK_SUFFIX}"


def segments(folder: Path) -> dict[str, list[int]]:
    """The segments in the folder: each owner's sequence numbers, in order."""
    found: dict[str, list[int]] = {}
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
        for entry in entries:
            match = _SEGMENT_NAME.match(entry.name)
            if match:
                found.setdefault(match["owner"], []).append(int(match["seq"]))
    return {owner: sorted(seqs) for owner, seqs in found.items()}


def lock_owners(folder: Path) -> list[str]:
    """The owners that have a lock file in the folder."""
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
        return [e.name[: -len(_LOCK_SUFFIX)] for e in entries if e.name.endswith(_LOCK_SUFFIX)]
    return []


def disk_use(folder: Path) -> int:
    """Bytes the folder's segments take."""
    total = 0
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    total += entry.stat().st_size
    return total


def try_lock(path: Path, *, create: bool = True) -> int | None:
    """An open descriptor holding ``path``'s lock, or None when another process holds it.

    Raises:
        FileNotFoundError: the file does not exist and ``create`` is false.
    """
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def lock_is_free(path: Path) -> bool:
    """Whether no process holds the lock (a missing file is free)."""
    try:
        fd = try_lock(path, create=False)
    except FileNotFoundError:
        return True
    if fd is None:
        return False
    os.close(fd)
    return True


def read_frames(fd: int, position: int, max_rows: int) -> list[Frame]:
    """Whole frames from ``position`` on, up to about ``max_rows`` rows (at least one frame).

    A frame still being written (or cut short by a crash) is left out, and so is a damaged one
    after whole frames (the next read starts with it).

    Raises:
        SpoolCorruptError: the bytes at ``position`` are not a valid frame.
    """
    frames: list[Frame] = []
    rows = 0
    chunk = os.pread(fd, READ_BYTES, position)
    offset = 0
    while (rows < max_rows or not frames) and offset + HEADER_BYTES <= len(chunk):
        magic, length, frame_rows, requests, ts, crc = _HEADER.unpack_from(chunk, offset)
        if magic != _MAGIC:
            if frames:
                break
            raise SpoolCorruptError(f"no frame at byte {position + offset}")
        start = offset + HEADER_BYTES
        if start + length > len(chunk):
            if frames:
                break  # the next read starts with it
            body = os.pread(fd, length, position + start)  # one frame larger than a chunk
            if len(body) < length:
                break
        else:
            body = chunk[start : start + length]
        if zlib.crc32(body) != crc:
            if frames:
                break
            raise SpoolCorruptError(f"the frame at byte {position + offset} fails its checksum")
        offset = start + length
        frames.append(Frame(position + offset, frame_rows, requests, ts, body))
        rows += frame_rows
    return frames


def rows_at(fd: int, position: int) -> int:
    """The rows the frame header at ``position`` names (0 if there is no valid header)."""
    header = os.pread(fd, HEADER_BYTES, position)
    if len(header) < HEADER_BYTES:
        return 0
    magic, _, rows, _, _, _ = _HEADER.unpack(header)
    return int(rows) if magic == _MAGIC else 0


class Pending(NamedTuple):
    """Rows on disk that the database does not have yet."""

    rows: int
    bytes: int
    oldest_ts: float | None


def pending(path: Path, position: int) -> Pending:
    """What is left to read in a segment from ``position`` (headers only; no torn tail)."""
    rows, oldest, end = 0, None, position
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return Pending(0, 0, None)
    try:
        size = os.fstat(fd).st_size
        while end + HEADER_BYTES <= size:
            magic, length, frame_rows, _, ts, _ = _HEADER.unpack(os.pread(fd, HEADER_BYTES, end))
            if magic != _MAGIC or end + HEADER_BYTES + length > size:
                break
            end += HEADER_BYTES + length
            rows += frame_rows
            if frame_rows and oldest is None:
                oldest = ts
    finally:
        os.close(fd)
    return Pending(rows, max(0, size - position), oldest)


def backlog(folder: Path, positions: Mapping[str, int]) -> Pending:
    """Everything the folder holds that the database does not.

    ``positions``: how far the database has each segment.
    """
    rows, size, oldest = 0, 0, None
    for owner, seqs in segments(folder).items():
        for seq in seqs:
            name = segment_name(owner, seq)
            left = pending(folder / name, positions.get(name, 0))
            rows, size = rows + left.rows, size + left.bytes
            if left.oldest_ts is not None:
                oldest = left.oldest_ts if oldest is None else min(oldest, left.oldest_ts)
    return Pending(rows, size, oldest)


class Appender:
    """A worker's side: its lock and the segment it appends to.

    Args:
        folder: the spool folder (created if missing).
        owner: a name no other process uses (host, pid and a random part).
        worker: host:pid, written in each segment's header.
    """

    def __init__(self, folder: Path, owner: str, worker: str) -> None:
        self.folder = folder
        self.owner = owner
        self.worker = worker
        folder.mkdir(parents=True, exist_ok=True)
        # Locked before it gets its name: no writer looking for orphans can take it first.
        draft = folder / f".{owner}{_LOCK_SUFFIX}.new"
        fd = os.open(draft, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(draft, lock_path(folder, owner))
        self.lock_fd = fd
        self.seq = 0
        self._fd: int | None = None
        self._size = 0

    def append(self, frames: list[bytes], ts: float) -> list[tuple[int, int]]:
        """Append frames in one write; returns each frame's (segment, end position).

        Raises:
            OSError: the disk refused them (full, read-only): nothing was appended.
        """
        if self._fd is None or self._size >= SEGMENT_BYTES:
            self._next_segment(ts)
        assert self._fd is not None
        data = b"".join(frames)
        written = os.write(self._fd, data)
        if written != len(data):  # a full disk may take part of it: cut it back to the frames
            os.ftruncate(self._fd, self._size)
            raise OSError(f"the spool took {written} of {len(data)} bytes")
        ends = []
        for frame in frames:
            self._size += len(frame)
            ends.append((self.seq, self._size))
        return ends

    def _next_segment(self, ts: float) -> None:
        self.close_segment(sync=False)
        self.seq += 1  # a number a failed attempt used is skipped: readers take the next one
        path = self.folder / segment_name(self.owner, self.seq)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        header = encode_frame(msgspec.msgpack.encode(SegmentHeader(self.worker, ts)), 0, 0, ts)
        try:
            if os.write(fd, header) != len(header):
                raise OSError(f"{path} took part of its header")
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._fd, self._size = fd, len(header)

    def close_segment(self, *, sync: bool = True) -> None:
        """Close the segment being appended to; ``sync`` flushes it to the disk first.

        Not when the next segment starts: that happens on the shipper's thread, every 8 MiB,
        and a flush that waits for a busy disk would hold the next append (the queue fills up).
        The page cache keeps the segment through any process crash.
        """
        if self._fd is not None:
            if sync:
                with contextlib.suppress(OSError):
                    os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def close(self) -> bool:
        """Close the segment and release the lock; True if the owner left nothing behind.

        The lock file is removed only when no segment of ours is left: a writer that adopts
        leftovers takes the same file.
        """
        self.close_segment()
        done = self.owner not in segments(self.folder)
        if done:
            with contextlib.suppress(FileNotFoundError):
                lock_path(self.folder, self.owner).unlink()
        os.close(self.lock_fd)
        return done
