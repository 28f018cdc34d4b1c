"""The settings every connection to the SQLite vault runs with, and why each has its value."""

from __future__ import annotations

BUSY_TIMEOUT_MS = 30_000
WAL_PAGES = 32  # see journal_size_limit below
# The API server's connections: a checkpoint syncs the WAL and the vault file to disk (~3 ms here) inside the commit
# of whichever write crosses the mark, while every other writer waits. At 32 pages that came every few reveals;
# at 256 (1 MiB) reveals and writes under load ran 40% and 2x faster (benchmarks/bench_peers.py); at 2048 (8 MiB),
# with the same servers side by side under wrk, writes another 5-10% and reveals 6-15% (p99 unchanged), while a
# write load still spent ~15% of its time holding the one writer in checkpoints at 256. Larger (16, 32 MiB) gained
# nothing more and raised the writes' p99 by a quarter.
SERVER_WAL_PAGES = 2048
SQLITE_PRAGMAS = {
    # First: every later pragma (journal_mode needs a lock) and statement then waits instead of failing.
    "busy_timeout": BUSY_TIMEOUT_MS,  # ms: wait for the write lock instead of failing with "database is locked"
    "journal_mode": "wal",  # readers never block the writer
    "synchronous": "normal",  # safe with WAL: a power cut may lose the last commits, never corrupt
    "foreign_keys": 1,
    # A purged version is zeroed, not left in a free page where with the master key it still opened (upstream's
    # SQLite and the one Python bundles on macOS and Windows leave it; Debian's is built with this on).
    "secure_delete": 1,
    # A bounded WAL. Every reveal commits its audit row, and the default checkpoint only every 1,000 pages let one
    # `secrets run` over 400 secrets grow the WAL to 1.76 MB (and fill a small disk by itself). Checkpoint every
    # WAL_PAGES pages, and cut the file back to that size after a bigger transaction. (Run after the writer's turn
    # instead, a checkpoint never caught up with the next writers and a write load grew the WAL past 6 MB.)
    "wal_autocheckpoint": WAL_PAGES,
    "journal_size_limit": WAL_PAGES * 4096,
}
