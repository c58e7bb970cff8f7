"""The batch manifest: one SQLite database in the output folder, one row per input image.

Every change of an item's state is one transaction, so whatever kills the
process, the database says what is finished and what is not. An item moves

    pending -> running -> writing -> done
                      \\-> failed  (retried while attempts <= retries)

``writing`` is the short step between "the result is in hand" and "the result
is on disk": the output's hash is committed first, then the file is renamed
into place, then the row becomes ``done``. After a crash, a ``writing`` row
whose output file has that hash is adopted as done (the work is never done
twice); any other unfinished row goes back to ``pending``.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["FILENAME", "Manifest", "file_hash"]

FILENAME = "deepprior-batch.sqlite"
STATUSES = ("pending", "running", "writing", "done", "failed")
PART_SUFFIX = ".deepprior-part"  # an output being written; never left behind by a finished write
#: Why an image became pending afresh (its event's detail): each makes one more finish legitimate.
_RESETS = ("found", "input or configuration changed", "output missing")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS configs (
    hash TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    input TEXT PRIMARY KEY,          -- path relative to the input folder
    input_hash TEXT NOT NULL,        -- sha256 of the input (and mask) bytes
    input_stat TEXT,                 -- their sizes and modification times: unchanged ones are not hashed again
    mask TEXT,                       -- inpainting: the mask's path relative to the input folder or --mask-dir
    output TEXT NOT NULL,            -- path relative to the output folder
    config_hash TEXT NOT NULL REFERENCES configs(hash),
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'writing', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    seconds REAL,                    -- the fit's own time
    iterations INTEGER,
    stop_iteration INTEGER,
    stop_reason TEXT,
    output_hash TEXT,
    error TEXT,
    worker TEXT,                     -- host:pid that ran the last attempt
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (  -- every change of status, for audits ("was anything done twice?")
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    worker TEXT,
    detail TEXT,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started REAL NOT NULL,
    finished REAL,
    executor TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    interrupted INTEGER NOT NULL DEFAULT 0
);
"""


def file_hash(*paths: str | os.PathLike[str]) -> str:
    """sha256 over the bytes of ``paths`` in order (an image and its mask are one item)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Item:
    """A row of the manifest, as the driver needs it."""

    input: str
    input_hash: str
    mask: str | None
    output: str
    status: str
    attempts: int
    error: str | None


class Manifest:
    """The manifest at ``path`` (created if missing). Not shared between processes: one driver owns it."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = os.fspath(path)
        if readonly:
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
        else:
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
        self.db.row_factory = sqlite3.Row

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @staticmethod
    def _log(db: sqlite3.Connection, key: str, status: str, worker: str | None = None,
             detail: str | None = None) -> None:
        db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?)", (key, status, worker, detail, time.time()))

    # ------------------------------------------------------------ set-up
    def add_config(self, config: dict[str, Any]) -> str:
        """Store a configuration; return its hash (items point to the configuration they ran with)."""
        text = json.dumps(config, sort_keys=True)
        key = hashlib.sha256(text.encode()).hexdigest()[:16]
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO configs VALUES (?, ?, ?)", (key, text, time.time()))
        return key

    def recover(self, output_dir: str) -> tuple[int, int]:
        """Settle the rows a dead process left unfinished; return (redone, adopted).

        ``running``: the fit never finished, so the item is pending again, without counting the
        attempt against it. ``writing``: adopted as done when the output on disk has the recorded hash.
        """
        adopted = redone = 0
        with self._transaction() as db:
            for row in db.execute("SELECT input, output, output_hash FROM items WHERE status = 'writing'").fetchall():
                path = os.path.join(output_dir, row["output"])
                if row["output_hash"] and os.path.isfile(path) and file_hash(path) == row["output_hash"]:
                    db.execute("UPDATE items SET status = 'done', updated = ? WHERE input = ?",
                               (time.time(), row["input"]))
                    self._log(db, row["input"], "done", detail="adopted after a crash: the output was written")
                    adopted += 1
                else:
                    db.execute("UPDATE items SET status = 'running' WHERE input = ?", (row["input"],))
            for row in db.execute("SELECT input FROM items WHERE status = 'running'").fetchall():
                self._log(db, row["input"], "pending", detail="unfinished when the last run ended")
            redone = db.execute("UPDATE items SET status = 'pending', attempts = MAX(attempts - 1, 0), updated = ? "
                                "WHERE status = 'running'", (time.time(),)).rowcount
        return redone, adopted

    def known_hashes(self) -> dict[str, tuple[str, str]]:
        """``input -> (input_stat, input_hash)`` as last recorded, to skip hashing files that did not change."""
        rows = self.db.execute("SELECT input, input_stat, input_hash FROM items WHERE input_stat IS NOT NULL")
        return {r["input"]: (r["input_stat"], r["input_hash"]) for r in rows}

    def sync(self, found: Iterable[tuple[str, str, str | None, str, str | None]], config_hash: str,
             output_dir: str) -> int:
        """Bring the rows in line with the files found: ``(input, input_hash, mask, output, input_stat)`` each.

        New inputs are added as pending. A finished item is redone when its input, its mask or the
        configuration changed, or its output is gone. Returns how many items were reset.
        """
        reset = 0
        now = time.time()
        with self._transaction() as db:
            for key, digest, mask, output, stat in found:
                row = db.execute("SELECT * FROM items WHERE input = ?", (key,)).fetchone()
                if row is None:
                    db.execute("INSERT INTO items (input, input_hash, input_stat, mask, output, config_hash, status, "
                               "updated) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                               (key, digest, stat, mask, output, config_hash, now))
                    self._log(db, key, "pending", detail=_RESETS[0])
                    continue
                changed = (row["input_hash"], row["mask"], row["output"], row["config_hash"]) != (
                    digest, mask, output, config_hash)
                lost = row["status"] == "done" and not os.path.isfile(os.path.join(output_dir, row["output"]))
                if row["input_stat"] != stat:
                    db.execute("UPDATE items SET input_stat = ? WHERE input = ?", (stat, key))
                if changed or lost:
                    db.execute("UPDATE items SET input_hash = ?, mask = ?, output = ?, config_hash = ?, "
                               "status = 'pending', attempts = 0, error = NULL, updated = ? WHERE input = ?",
                               (digest, mask, output, config_hash, now, key))
                    self._log(db, key, "pending", detail=_RESETS[2] if lost and not changed else _RESETS[1])
                    reset += 1
        return reset

    # ------------------------------------------------------------ work
    def queue(self, retries: int) -> list[Item]:
        """Items to run now: pending ones, and failed ones with attempts left."""
        rows = self.db.execute("SELECT * FROM items WHERE status = 'pending' OR (status = 'failed' AND attempts <= ?) "
                               "ORDER BY input", (retries,)).fetchall()
        return [self._item(r) for r in rows]

    def item(self, key: str) -> Item:
        return self._item(self.db.execute("SELECT * FROM items WHERE input = ?", (key,)).fetchone())

    @staticmethod
    def _item(row: sqlite3.Row) -> Item:
        return Item(row["input"], row["input_hash"], row["mask"], row["output"], row["status"], row["attempts"],
                    row["error"])

    def start(self, key: str, worker: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE items SET status = 'running', attempts = attempts + 1, worker = ?, error = NULL, "
                       "updated = ? WHERE input = ?", (worker, time.time(), key))
            self._log(db, key, "running", worker)

    def writing(self, key: str, output_hash: str, *, seconds: float, iterations: int, stop_iteration: int,
                stop_reason: str, worker: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE items SET status = 'writing', output_hash = ?, seconds = ?, iterations = ?, "
                       "stop_iteration = ?, stop_reason = ?, worker = ?, updated = ? WHERE input = ?",
                       (output_hash, seconds, iterations, stop_iteration, stop_reason, worker, time.time(), key))
            self._log(db, key, "writing", worker, output_hash)

    def done(self, key: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE items SET status = 'done', updated = ? WHERE input = ?", (time.time(), key))
            self._log(db, key, "done")

    def fail(self, key: str, error: str, *, started: bool = True) -> None:
        """Record a failure. ``started=False`` for problems found before the item was started (a folder
        named like an image, a missing mask): the attempt is counted here instead of by :meth:`start`."""
        with self._transaction() as db:
            db.execute("UPDATE items SET status = 'failed', error = ?, attempts = attempts + ?, updated = ? "
                       "WHERE input = ?", (error, 0 if started else 1, time.time(), key))
            self._log(db, key, "failed", detail=error)

    def release(self, key: str) -> None:
        """Give an interrupted item back: pending, and the attempt does not count."""
        with self._transaction() as db:
            db.execute("UPDATE items SET status = 'pending', attempts = MAX(attempts - 1, 0), updated = ? "
                       "WHERE input = ?", (time.time(), key))
            self._log(db, key, "pending", detail="interrupted")

    # ------------------------------------------------------------ runs and reports
    def begin_run(self, executor: str) -> int:
        with self._transaction() as db:
            return db.execute("INSERT INTO runs (started, executor) VALUES (?, ?)", (time.time(), executor)).lastrowid

    def end_run(self, run_id: int, done: int, failed: int, interrupted: bool) -> None:
        with self._transaction() as db:
            db.execute("UPDATE runs SET finished = ?, done = ?, failed = ?, interrupted = ? WHERE id = ?",
                       (time.time(), done, failed, int(interrupted), run_id))

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for row in self.db.execute("SELECT status, COUNT(*) AS n FROM items GROUP BY status"):
            counts[row["status"]] = row["n"]
        return counts

    def failures(self, limit: int | None = None) -> list[tuple[str, int, str]]:
        """(input, attempts, error) of failed items."""
        sql = "SELECT input, attempts, error FROM items WHERE status = 'failed' ORDER BY input"
        rows = self.db.execute(sql + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
        return [(r["input"], r["attempts"], r["error"] or "") for r in rows]

    def events(self, key: str | None = None) -> list[tuple[str, str]]:
        """(input, status) of every recorded change, oldest first."""
        sql = "SELECT input, status FROM events" + (" WHERE input = ?" if key else "") + " ORDER BY rowid"
        return [(r["input"], r["status"]) for r in self.db.execute(sql, (key,) if key else ())]

    def runs(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM runs ORDER BY id").fetchall()

    def configs(self) -> list[dict[str, Any]]:
        return [json.loads(r["config"]) for r in self.db.execute("SELECT config FROM configs ORDER BY created")]

    def verify(self, output_dir: str | os.PathLike[str]) -> list[str]:
        """Problems with a batch's manifest and outputs, one line each (none: all is well): the database's
        own integrity check, a ``done`` image whose output is missing or differs from the recorded hash, an
        image finished more than once under the same configuration, a half-written file left behind."""
        problems = [f"manifest: {line}" for (line,) in self.db.execute("PRAGMA integrity_check") if line != "ok"]
        for row in self.db.execute("SELECT input, output, output_hash FROM items WHERE status = 'done'"):
            path = os.path.join(output_dir, row["output"])
            if not os.path.isfile(path):
                problems.append(f"{row['input']}: done, but its output '{row['output']}' is missing")
            elif file_hash(path) != row["output_hash"]:
                problems.append(f"{row['input']}: its output '{row['output']}' differs from the one recorded")
        finished: dict[str, int] = {}  # times done since the image was found or last reset for a reason
        for row in self.db.execute("SELECT input, status, detail FROM events ORDER BY rowid"):
            if row["status"] == "pending" and row["detail"] in _RESETS:
                finished[row["input"]] = 0
            elif row["status"] == "done":
                finished[row["input"]] = finished.get(row["input"], 0) + 1
        problems += [f"{key}: finished {n} times" for key, n in finished.items() if n > 1]
        for folder, _, names in os.walk(output_dir):
            problems += [f"half-written file left: {os.path.relpath(os.path.join(folder, n), output_dir)}"
                         for n in names if n.endswith(PART_SUFFIX)]
        return problems

    def done_seconds(self) -> float:
        return self.db.execute("SELECT COALESCE(SUM(seconds), 0) FROM items WHERE status = 'done'").fetchone()[0]
