"""LiveRec-format data: load, fit the simulator's parameters, export its sessions.

The LiveRec Twitch data (Rappaz et al., RecSys 2021) has one row per viewing:
``user, stream_id, streamer, start, stop`` with ``start``/``stop`` 10-minute slot
indices (the user was in the stream for slots ``start <= s < stop``). Files may have a
header line naming those columns; ids may be any text.

* :func:`load_liverec_csv` - parse a file; every malformed row (wrong number of
  columns, non-integer or negative slot, ``stop <= start``) is reported with its line
  number in one ``ValueError``; nothing is silently dropped.
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

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

COLUMNS: tuple[str, ...] = ("user", "stream_id", "streamer", "start", "stop")
SLOTS_PER_DAY = 144


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

    def __len__(self) -> int:
        return int(self.users.size)


def _int_slot(text: str) -> int | None:
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def load_liverec_csv(path: str | Path) -> Sessions:
    """Parse a LiveRec-format CSV (see the module docstring); ValueError on bad rows."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such file: {str(path)!r}")
    rows: list[tuple[str, str, str, int, int]] = []
    errors: list[str] = []
    with path.open(newline="") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
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
            bad = [f"{name}={text!r} is not a non-negative integer slot"
                   for name, text, value in (("start", start_text, start),
                                             ("stop", stop_text, stop)) if value is None]
            if not bad and stop <= start:  # type: ignore[operator]
                bad.append(f"stop ({stop}) <= start ({start})")
            if not (user and stream and streamer):
                bad.append("empty id")
            if bad:
                errors.append(f"line {line_no}: " + "; ".join(bad))
                continue
            rows.append((user, stream, streamer, start, stop))  # type: ignore[arg-type]
    if errors:
        raise ValueError(f"{len(errors)} malformed row(s) in {str(path)!r}: " + " | ".join(errors))
    if not rows:
        raise ValueError(f"{str(path)!r} holds no sessions")
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
