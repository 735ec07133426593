"""LiveRec-format data: load, fit the simulator's parameters, export its sessions.

The LiveRec Twitch data (Rappaz et al., RecSys 2021) has one row per viewing:
``user, stream_id, streamer, start, stop`` with ``start``/``stop`` 10-minute slot
indices (the user was in the stream for slots ``start <= s < stop``). Files may have a
header line naming those columns; ids may be any text.

* :func:`load_liverec_csv` - parse a UTF-8 file (a byte-order mark is allowed); every
  malformed row (wrong number of columns, a slot that is not an integer in
  ``0..MAX_SLOT``, ``stop <= start``, an empty id, bytes that are not UTF-8) is reported
  with its line number in one ``ValueError`` naming the file, and so is a ``stream_id``
  that appears under two streamers (with the lines of both). **Duplicate rows** (the
  same five fields again, e.g. a viewing recorded twice) are **dropped with a
  warning** naming their lines and the line each repeats: a repeat carries no new
  viewing and would double the fitted affinities; ``Sessions.duplicates`` counts them.
  Nothing else is dropped.
* :func:`fit_schedules` - each streamer's weekly schedule: the weekdays it streamed,
  the median start slot-of-day and median duration of its streams (a stream spans
  from the first ``start`` to the last ``stop`` of its rows).
* :func:`fit_affinities` - user x streamer watch slots (the env's initial histories).
* :func:`fit_env_params` - both, as the ``fitted=`` argument of ``LiveRecEnv``.
* :func:`export_sessions` - write an env's watch sessions (or a list of rows) in the
  same format; ``stream_id`` is ``streamer * 1000 + day`` (one stream per streamer
  and day).
"""

from __future__ import annotations

import codecs
import csv
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

COLUMNS: tuple[str, ...] = ("user", "stream_id", "streamer", "start", "stop")
SLOTS_PER_DAY = 144
#: the largest slot index a file may hold (10**12 ten-minute slots, ~19 million years):
#: keeps every slot, and sums of slots, within 64-bit integers
MAX_SLOT = 10**12
_DIGITS = re.compile(r"[0-9]+")
#: at most this many problems are listed in one error or warning message
_MAX_LISTED = 20


@dataclass(frozen=True)
class Sessions:
    """Parsed rows; ``users``/``streamers`` are index arrays into the sorted id lists."""

    user_ids: list[str]
    streamer_ids: list[str]
    users: np.ndarray
    streams: list[str]
    streamers: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    #: duplicate rows the loader dropped (see :func:`load_liverec_csv`)
    duplicates: int = 0

    def __len__(self) -> int:
        return int(self.users.size)


def _int_slot(text: str) -> int | None:
    """A slot: decimal digits giving an integer in ``0..MAX_SLOT``, else None."""
    if not _DIGITS.fullmatch(text) or len(text.lstrip("0")) > len(str(MAX_SLOT)):
        return None
    value = int(text)
    return value if value <= MAX_SLOT else None


def _listed(items: list[str]) -> str:
    more = len(items) - _MAX_LISTED
    return " | ".join(items[:_MAX_LISTED]) + (f" | ... and {more} more" if more > 0 else "")


def _decoded_lines(f: BinaryIO, bad: dict[int, str]) -> Iterator[str]:
    """The file's lines as text (UTF-8; a byte-order mark at the start is skipped); a line
    that is not UTF-8 is recorded in ``bad`` (line number -> problem) and given as ''."""
    for line_no, raw in enumerate(f, start=1):
        if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as e:
            bad[line_no] = (f"not UTF-8 ({e.reason}: byte {raw[e.start:e.start + 1]!r} "
                            f"at column {e.start + 1})")
            yield "\n"


def load_liverec_csv(path: str | Path) -> Sessions:
    """Parse a LiveRec-format CSV (see the module docstring); ValueError on bad rows,
    a ``UserWarning`` for dropped duplicate rows."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such file: {str(path)!r}")
    rows: list[tuple[str, str, str, int, int]] = []
    errors: list[str] = []
    bad_lines: dict[int, str] = {}
    seen: dict[tuple[str, str, str, int, int], int] = {}  # row -> its first line
    duplicates: list[str] = []
    owner: dict[str, tuple[str, int]] = {}  # stream id -> (streamer, first line)
    conflicts: dict[tuple[str, str], list[int]] = {}  # (stream, other streamer) -> lines
    with path.open("rb") as f:
        reader = csv.reader(_decoded_lines(f, bad_lines))
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:  # a NUL byte, a field beyond csv's size limit
                raise ValueError(f"{str(path)!r} line {reader.line_num}: not CSV ({e})") from None
            line_no = reader.line_num
            if line_no in bad_lines:
                errors.append(f"line {line_no}: {bad_lines[line_no]}")
                continue
            if not row or all(not c.strip() for c in row):
                errors.append(f"line {line_no}: empty row")
                continue
            if line_no == 1 and [c.strip().lower() for c in row] == list(COLUMNS):
                continue
            if len(row) != len(COLUMNS):
                errors.append(f"line {line_no}: expected {len(COLUMNS)} columns "
                              f"{list(COLUMNS)}, got {len(row)}")
                continue
            user, stream, streamer, start_text, stop_text = (c.strip() for c in row)
            start, stop = _int_slot(start_text), _int_slot(stop_text)
            bad = [f"{name}={text[:40]!r} is not an integer slot in 0..{MAX_SLOT}"
                   for name, text, value in (("start", start_text, start),
                                             ("stop", stop_text, stop)) if value is None]
            if not bad and stop <= start:  # type: ignore[operator]
                bad.append(f"stop ({stop}) <= start ({start})")
            if not (user and stream and streamer):
                bad.append("empty id")
            if bad:
                errors.append(f"line {line_no}: " + "; ".join(bad))
                continue
            record = (user, stream, streamer, start, stop)
            if record in seen:
                duplicates.append(f"line {line_no} repeats line {seen[record]}")
                continue
            seen[record] = line_no
            first = owner.setdefault(stream, (streamer, line_no))
            if first[0] != streamer:
                conflicts.setdefault((stream, streamer), []).append(line_no)
            rows.append(record)  # type: ignore[arg-type]
    for (stream, streamer), lines in conflicts.items():
        first_streamer, first_line = owner[stream]
        errors.append(
            f"stream_id {stream!r} belongs to streamer {first_streamer!r} (line {first_line}) "
            f"and to streamer {streamer!r} (line{'s' if len(lines) > 1 else ''} "
            f"{', '.join(map(str, lines[:_MAX_LISTED]))}): a stream has one streamer")
    if errors:
        raise ValueError(f"{len(errors)} malformed row(s) in {str(path)!r}: " + _listed(errors))
    if not rows:
        raise ValueError(f"{str(path)!r} holds no sessions")
    if duplicates:
        warnings.warn(
            f"{str(path)!r}: dropped {len(duplicates)} duplicate row(s) (the same user, "
            f"stream_id, streamer, start and stop as an earlier row): {_listed(duplicates)}",
            UserWarning, stacklevel=2)
    user_ids = sorted({r[0] for r in rows}, key=_id_key)
    streamer_ids = sorted({r[2] for r in rows}, key=_id_key)
    u_index = {u: i for i, u in enumerate(user_ids)}
    s_index = {s: i for i, s in enumerate(streamer_ids)}
    return Sessions(
        user_ids=user_ids,
        streamer_ids=streamer_ids,
        users=np.array([u_index[r[0]] for r in rows], dtype=np.int64),
        streams=[r[1] for r in rows],
        streamers=np.array([s_index[r[2]] for r in rows], dtype=np.int64),
        start=np.array([r[3] for r in rows], dtype=np.int64),
        stop=np.array([r[4] for r in rows], dtype=np.int64),
        duplicates=len(duplicates),
    )


def _id_key(x: str) -> tuple[int, int | str]:
    """Numeric ids in numeric order, then the rest alphabetically."""
    return (0, int(x)) if x.isdigit() else (1, x)


def fit_schedules(sessions: Sessions) -> dict[str, np.ndarray]:
    """Weekly schedule per streamer: ``days`` (K, 7) bool, ``start`` and ``duration``
    (K,) in slots (medians over the streamer's streams; a stream crossing midnight
    counts for the day it started)."""
    k = len(sessions.streamer_ids)
    spans: dict[str, list[int]] = {}
    owner: dict[str, int] = {}
    for stream, i, s, e in zip(sessions.streams, sessions.streamers.tolist(),
                               sessions.start.tolist(), sessions.stop.tolist(), strict=True):
        span = spans.setdefault(stream, [s, e])
        span[0], span[1] = min(span[0], s), max(span[1], e)
        owner[stream] = i
    days = np.zeros((k, 7), dtype=bool)
    starts: list[list[int]] = [[] for _ in range(k)]
    durations: list[list[int]] = [[] for _ in range(k)]
    for stream, (s, e) in spans.items():
        i = owner[stream]
        days[i, (s // SLOTS_PER_DAY) % 7] = True
        starts[i].append(s % SLOTS_PER_DAY)
        durations[i].append(e - s)
    return {
        "days": days,
        "start": np.array([int(np.median(x)) for x in starts], dtype=np.int64),
        "duration": np.array([max(1, int(np.median(x))) for x in durations], dtype=np.int64),
    }


def fit_affinities(sessions: Sessions) -> np.ndarray:
    """Watch slots per (user, streamer), shape (n_users, n_streamers)."""
    out = np.zeros((len(sessions.user_ids), len(sessions.streamer_ids)), dtype=np.float64)
    np.add.at(out, (sessions.users, sessions.streamers), sessions.stop - sessions.start)
    return out


def fit_env_params(sessions: Sessions) -> dict[str, Any]:
    """``LiveRecEnv(fitted=...)`` parameters: schedules, affinities and the id lists."""
    params: dict[str, Any] = dict(fit_schedules(sessions))
    params["affinity"] = fit_affinities(sessions)
    params["user_ids"] = list(sessions.user_ids)
    params["streamer_ids"] = list(sessions.streamer_ids)
    return params


def export_sessions(
    source: Any, path: str | Path, *, header: bool = True
) -> int:
    """Write ``source``'s sessions as LiveRec CSV; returns the number of rows.

    ``source`` is a ``LiveRecEnv`` (its :meth:`watch_sessions`) or an iterable of
    ``(user, streamer, start, stop)`` rows with absolute slot indices.
    """
    rows: Sequence[tuple[int, int, int, int]] | Iterable[tuple[int, int, int, int]]
    fn = getattr(source, "watch_sessions", None)
    rows = fn() if callable(fn) else source
    n = 0
    with Path(path).open("w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(COLUMNS)
        for user, streamer, start, stop in rows:
            if stop <= start:
                raise ValueError(f"row {(user, streamer, start, stop)} has stop <= start")
            w.writerow([user, streamer * 1000 + start // SLOTS_PER_DAY, streamer, start, stop])
            n += 1
    return n
