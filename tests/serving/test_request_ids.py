"""Request ids: 128 random bits as 32 hex digits, read from the system a batch at a time.

Never the same id twice, in one process or across a fork (a child must not hand out the ids its
parent read before forking).
"""

from __future__ import annotations

import os
import re

import pytest

from serving.http import middleware
from serving.http.middleware import RandomIds


def test_ids_are_32_hex_digits_and_all_different_across_batches() -> None:
    ids = RandomIds(batch=4)
    drawn = [ids.next() for _ in range(1_000)]  # 250 reads of the system's source
    assert all(re.fullmatch(rb"[0-9a-f]{32}", i) for i in drawn)
    assert len(set(drawn)) == len(drawn)


def test_ids_are_read_a_batch_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real = os.urandom

    def counting(size: int) -> bytes:
        reads.append(size)
        return real(size)

    monkeypatch.setattr(os, "urandom", counting)
    ids = RandomIds(batch=8)
    for _ in range(20):
        ids.next()
    assert reads == [8 * 16] * 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    ids = middleware._IDS  # the process's ids, which the fork hook empties in a child
    ids.next()  # a batch now sits in memory
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the ids it hands out go to the parent, then it leaves at once
        os.close(read)
        os.write(write, b"".join(ids.next() for _ in range(8)))
        os._exit(0)
    os.close(write)
    parents = {ids.next() for _ in range(8)}  # what the same buffer gives next
    received = b""
    while chunk := os.read(read, 4096):
        received += chunk
    os.close(read)
    os.waitpid(pid, 0)
    children = {received[i : i + 32] for i in range(0, len(received), 32)}
    assert len(children) == 8
    assert not children & parents
