"""The journal's chunk marks never get ahead of what a destination holds."""

from __future__ import annotations

from streamflow_data.transfer.journal import ChunkMark, NullJournal
from streamflow_data.transfer.resume import FileResume

MiB = 1 << 20


class _Marks(NullJournal):
    """A journal that keeps the chunk marks it is given, in order."""

    resumable = True

    def __init__(self) -> None:
        self.marks: list[tuple[int, int]] = []

    def chunk(self, relpath: str, index: int, number: int, mark: ChunkMark) -> None:
        self.marks.append((number, mark.done))


def _write_blocks(in_flight: int) -> list[tuple[int, int]]:
    """Blocks of 4 MiB of a 64 MiB chunk, each read then written, as the engine does."""
    journal = _Marks()
    resume = FileResume(journal, "f", 64 * MiB)
    resume.track(0)
    for start in range(0, 64 * MiB, 4 * MiB):
        resume.read(start + 4 * MiB, start)  # the CRC32C so far (any number will do)
        resume.written(0, 0, start, start + 4 * MiB, in_flight)
    return journal.marks


def test_marks_follow_the_writes_of_a_writer_with_nothing_in_flight() -> None:
    assert _write_blocks(0) == [(0, n * 4 * MiB) for n in range(1, 17)]


def test_marks_stay_behind_what_a_writer_may_still_have_on_the_way() -> None:
    """A stream's writer returns once a pipe took the bytes: a kill then loses what the
    pipe, the channel window and the sockets held, which no mark may include."""
    marks = _write_blocks(16 * MiB)
    assert marks == [(0, n * 4 * MiB) for n in range(1, 13)]
    assert all(
        done <= written - 16 * MiB
        for (_, done), written in zip(marks, range(20 * MiB, 68 * MiB, 4 * MiB), strict=True)
    )


def test_a_chunk_smaller_than_what_is_in_flight_is_marked_once_later_chunks_pass_it() -> None:
    journal = _Marks()
    resume = FileResume(journal, "f", 8 * MiB)
    resume.track(0)
    for start in range(0, 24 * MiB, MiB):  # three chunks of 8 MiB, one stream
        resume.read(start + MiB, start)
        resume.written(0, start // (8 * MiB), start, start + MiB, 16 * MiB)
    assert journal.marks == [(0, n * MiB) for n in range(1, 9)]  # chunk 0 whole, at 24 MiB
