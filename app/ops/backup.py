"""Database backup and restore (SPEC 7, ``scpln db backup`` / ``scpln db restore``).

Owns making a verified copy of the plan database while it is in use, listing copies, and putting a
copy back:

- SQLite, method ``online`` (the default): the online backup API (``sqlite3.Connection.backup``)
  copies pages in steps with a short pause between them. Writers go on during the copy; a copy the
  source changed under too often is taken again in one step.
- SQLite, method ``file``: checkpoint the WAL into the main file (``wal_checkpoint(TRUNCATE)``), then
  take the write lock (``BEGIN IMMEDIATE``) and check that the ``-wal`` file is empty or absent. With
  the write lock held and the WAL empty, no other connection can commit or checkpoint anything, so
  the main file alone is the whole committed database and stays unchanged while it is copied as
  plain bytes in large chunks (a CRC-32 of the bytes is taken as they are read; the copy is written
  with ``O_DIRECT`` where the file system allows it, so it bypasses the page cache, and is fsynced). Readers are not blocked. A writer waits until the copy ends; with the application's
  30 s busy timeout it fails ("database is locked") if the copy takes longer, which a file of
  several GB can (a 9.2 GB file took 15 to 33 s on a shared test machine), so on big databases use
  this method with writers paused, as the rollback does. When a writer commits between the
  checkpoint and the lock, the lock is released and the attempt repeated a few times, then the
  online method is used instead. The lock is released on every path. The bytes are read by a
  short-lived child process: closing a descriptor of the database file in this process would drop
  the POSIX locks SQLite holds on it here, ours included.
- Verification ``full`` (the default): ``PRAGMA integrity_check`` on the copy, which must also hold
  the ``plan_versions`` table. Verification ``copy`` (method ``file`` only): the copy is read back
  from the disk after the fsync (``O_DIRECT``, or a normal read after its cached pages are dropped),
  its CRC-32 and size must equal those taken from the source while copying, and it must open read-only as SQLite and count its ``plan_versions`` rows.
  That proves the copy holds exactly the bytes of the locked, committed source file; it does not
  re-check the source's own b-trees. When the file method falls back to the online one, the copy
  is verified in full.
- Either way the copy is written to a hidden ``.partial`` file, gets its final name only once
  verified, and is deleted if anything fails. Restore verifies the copy first, keeps a copy of the
  database it replaces, then copies pages the other way, so connections already open see the
  restored data.
- PostgreSQL: ``pg_dump -Fc`` and ``pg_restore --clean --single-transaction`` (verified with
  ``pg_restore --list``); the method and verification options do not apply.

A backup never overwrites an existing file: the name is claimed with a hard link, which fails when
the name is taken. Relative folders are taken from the repository root.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import mmap
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from app.config import resolve_path
from app.errors import ScplnError
from app.storage.db import get_engine, sqlite_path

#: Pages copied per backup step (4 MiB with the default 4 KiB page), and the pause between steps.
PAGES_PER_STEP = 1024
STEP_SLEEP = 0.005
#: Restarts (the source changed under the copy) tolerated before copying in one step instead.
MAX_RESTARTS = 3
BACKUP_SUFFIXES = (".db", ".dump")
#: SQLite backup methods and verifications (see the module docstring).
METHODS = ("online", "file")
VERIFICATIONS = ("full", "copy")
#: Bytes per read and write of the file method and of its read-back.
FILE_CHUNK = 64 * 1024 * 1024
#: Checkpoint-then-lock attempts of the file method before it falls back to the online method.
FILE_LOCK_ATTEMPTS = 3

#: Called while copying: (pages copied, pages in total), or bytes with the file method.
CopyProgress = Callable[[int, int], None]


class BackupError(ScplnError):
    """A backup could not be made or verified, or a restore was refused; nothing was changed."""

    status = 500
    title = "backup error"


@dataclass
class RestoreResult:
    restored_from: Path
    #: The copy of the database as it was before the restore (SQLite), or None.
    previous_copy: Path | None


def backup_database(
    dest_dir: str | Path = "backup",
    engine: Engine | None = None,
    prefix: str = "plan_db",
    *,
    progress: CopyProgress | None = None,
    pages_per_step: int = PAGES_PER_STEP,
    method: str = "online",
    verify: str = "full",
) -> Path:
    """Write a verified copy of the database to ``dest_dir/<prefix>_<YYYYMMDDHHMM>.db`` (``.dump`` on
    PostgreSQL); when that name is taken, seconds and then a counter are added. Returns the path.

    On SQLite ``method`` is ``"online"`` (backup API in steps of ``pages_per_step`` pages) or
    ``"file"`` (byte copy under the write lock), and ``verify`` is ``"full"`` (integrity_check) or
    ``"copy"`` (read-back checksum; ``"file"`` only). PostgreSQL ignores both."""
    engine = engine or get_engine()
    if engine.dialect.name == "sqlite":
        _check_options(method, verify)
    dest = resolve_path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    if engine.dialect.name == "sqlite":
        return _backup_sqlite(_live_path(engine), dest, prefix, progress, pages_per_step, method, verify)
    if engine.dialect.name == "postgresql":
        return _backup_postgres(engine, dest, prefix)
    raise BackupError(f"backups of {engine.dialect.name} databases are not supported")


def list_backups(dest_dir: str | Path = "backup") -> list[dict[str, Any]]:
    """The backup files in ``dest_dir``, newest first: ``{name, path, size, created_at}`` (created_at in
    milliseconds since the epoch, from the file's modification time)."""
    folder = resolve_path(dest_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if path.name.startswith(".") or path.suffix not in BACKUP_SUFFIXES or not path.is_file():
            continue
        stat = path.stat()
        found.append(
            {
                "name": path.name,
                "path": str(path),
                "size": stat.st_size,
                "created_at": stat.st_mtime_ns // 10**6,
                "_ns": stat.st_mtime_ns,
            }
        )
    found.sort(key=lambda b: (b["_ns"], b["name"]), reverse=True)  # backups a millisecond apart too
    for entry in found:
        del entry["_ns"]
    return found


def restore_database(
    path: str | Path,
    engine: Engine | None = None,
    *,
    keep_previous: bool = True,
    progress: CopyProgress | None = None,
) -> RestoreResult:
    """Replace the database's content with the backup at ``path``, after verifying the backup.

    On SQLite the current database is first copied (unverified: it may be the damaged one) beside the
    backup as ``plan_db_prerestore_<ts>.db`` unless ``keep_previous`` is False. Raises ``BackupError``
    when the backup is missing or fails verification; the database is then untouched."""
    engine = engine or get_engine()
    source = resolve_path(path)
    if not source.is_file():
        raise BackupError(f"backup file {source} does not exist")
    if engine.dialect.name == "sqlite":
        live = _live_path(engine)
        problem = verify_sqlite_backup(source)
        if problem:
            raise BackupError(f"refusing to restore {source.name}: {problem}")
        previous = None
        if keep_previous:
            previous = _copy_sqlite(live, source.parent, "plan_db_prerestore", verify=False)
        _restore_sqlite(source, live, progress)
        return RestoreResult(source, previous)
    if engine.dialect.name == "postgresql":
        _restore_postgres(engine, source)
        return RestoreResult(source, None)
    raise BackupError(f"restoring {engine.dialect.name} databases is not supported")


def verify_sqlite_backup(path: str | Path) -> str | None:
    """None when ``path`` is a sound SQLite database holding the plan catalogue, else the reason."""
    try:
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as exc:
        return f"cannot be opened ({exc})"
    try:
        lines = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        if lines != ["ok"]:
            return "integrity_check failed: " + "; ".join(lines[:5])
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "plan_versions" not in tables:
            return "not a plan database (no plan_versions table)"
    except sqlite3.Error as exc:
        return f"not a readable SQLite database ({exc})"
    finally:
        conn.close()
    return None


# --- SQLite -------------------------------------------------------------------------------------


def _live_path(engine: Engine) -> Path:
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    if path is None:
        raise BackupError("an in-memory SQLite database has no file to back up or restore")
    return path


def _check_options(method: str, verify: str) -> None:
    if method not in METHODS:
        raise BackupError(f"unknown backup method {method!r} (one of: {', '.join(METHODS)})")
    if verify not in VERIFICATIONS:
        raise BackupError(f"unknown verification {verify!r} (one of: {', '.join(VERIFICATIONS)})")
    if verify == "copy" and method != "file":
        raise BackupError("verification 'copy' needs the 'file' method (it compares the source's checksum)")


def _backup_sqlite(
    live: Path,
    dest: Path,
    prefix: str,
    progress: CopyProgress | None,
    pages_per_step: int,
    method: str = "online",
    verify: str = "full",
) -> Path:
    if not live.is_file():
        raise BackupError(f"database file {live} does not exist")
    return _copy_sqlite(
        live, dest, prefix, verify=True, progress=progress, pages_per_step=pages_per_step,
        method=method, check=verify,
    )  # fmt: skip


def _copy_sqlite(
    live: Path,
    dest: Path,
    prefix: str,
    *,
    verify: bool,
    progress: CopyProgress | None = None,
    pages_per_step: int = PAGES_PER_STEP,
    method: str = "online",
    check: str = "full",
) -> Path:
    """Copy ``live`` into a hidden file in ``dest``, verify it (``check`` says how), then give it its
    final name."""
    dest.mkdir(parents=True, exist_ok=True)
    partial = dest / f".{prefix}_{os.getpid()}_{time.monotonic_ns()}.partial"
    try:
        source = _file_copy(live, partial, progress) if method == "file" else None
        if source is None:  # the online method, or the file method found no quiet moment
            partial.unlink(missing_ok=True)
            _online_copy(live, partial, progress, pages_per_step)
        if verify:
            if check == "copy" and source is not None:
                problem = verify_file_copy(partial, *source)
            else:
                problem = verify_sqlite_backup(partial)
            if problem:
                raise BackupError(f"the copy of {live.name} failed verification: {problem}")
        final = _claim_name(partial, dest, prefix, ".db")
    finally:
        partial.unlink(missing_ok=True)
    return final


def verify_file_copy(path: str | Path, size: int, crc: int) -> str | None:
    """None when ``path`` holds ``size`` bytes with CRC-32 ``crc`` and opens read-only as SQLite with
    a ``plan_versions`` table, else the reason."""
    try:
        actual_size, actual_crc = _file_checksum(Path(path))
    except OSError as exc:
        return f"cannot be read back ({exc})"
    if actual_size != size:
        return f"{actual_size} bytes read back, the source had {size}"
    if actual_crc != crc:
        return f"checksum {actual_crc:08x} read back differs from the source's {crc:08x}"
    try:
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as exc:
        return f"cannot be opened ({exc})"
    try:
        conn.execute("SELECT count(*) FROM plan_versions").fetchone()
    except sqlite3.Error as exc:
        return f"not a readable plan database ({exc})"
    finally:
        conn.close()
    return None


def _file_checksum(path: Path) -> tuple[int, int]:
    """(size, CRC-32) of the bytes of ``path`` as the disk holds them: read with ``O_DIRECT`` into two
    page-aligned buffers where the file system allows it, else read normally after asking the kernel to
    drop the file's clean cached pages (so a just-fsynced copy is read from the disk, not from memory).
    A reader thread fills one buffer while the other is checksummed."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECT", 0))
        direct = hasattr(os, "O_DIRECT")
    except OSError:
        fd = os.open(path, os.O_RDONLY)
        direct = False
    if not direct and hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def read(view: memoryview, offset: int) -> int:
        nonlocal direct
        while True:
            try:
                return os.preadv(fd, [view], offset)
            except OSError:
                if not direct:
                    raise
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)
                direct = False

    crc = done = 0
    try:
        with (
            mmap.mmap(-1, FILE_CHUNK) as first,
            mmap.mmap(-1, FILE_CHUNK) as second,
            memoryview(first) as one,
            memoryview(second) as other,
            ThreadPoolExecutor(1, thread_name_prefix="scpln-readback") as reader,
        ):
            views = (one, other)
            pending = reader.submit(read, views[0], 0)
            turn = 0
            while True:
                n = pending.result()
                if n == 0:
                    break
                pending = reader.submit(read, views[1 - turn], done + n)
                with views[turn][:n] as part:
                    crc = zlib.crc32(part, crc)
                done += n
                turn = 1 - turn
            pending.result()
    finally:
        os.close(fd)
    return done, crc


def _file_copy(live: Path, target: Path, progress: CopyProgress | None) -> tuple[int, int] | None:
    """Copy the main file of ``live`` to ``target`` under the write lock with an empty WAL; returns
    (size, CRC-32) of the bytes copied, or None when every attempt found the WAL written to."""
    wal = live.with_name(live.name + "-wal")
    try:
        conn = sqlite3.connect(live, timeout=30, isolation_level=None)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {live} for a file backup: {exc}") from exc
    try:
        for _ in range(FILE_LOCK_ATTEMPTS):
            _checkpoint(conn)
            conn.execute("BEGIN IMMEDIATE")  # the write lock: nobody else commits until ROLLBACK
            try:
                if _wal_size(wal) == 0:  # nothing committed outside the main file
                    size = live.stat().st_size
                    copied, crc = _copy_chunks(live, target, progress)
                    if copied != size:
                        raise BackupError(f"copied {copied} bytes of {live}, the file has {size}")
                    return size, crc
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        return None
    except (sqlite3.Error, OSError) as exc:
        raise BackupError(f"file backup of {live} failed: {exc}") from exc
    finally:
        conn.close()


def _checkpoint(conn: sqlite3.Connection) -> None:
    """Move the WAL's frames into the main file and truncate the WAL (waits for readers of older
    snapshots up to the busy timeout; when they outlast it the WAL stays and the caller retries)."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def _wal_size(wal: Path) -> int:
    try:
        return wal.stat().st_size
    except FileNotFoundError:
        return 0


#: Run by a child process (standard library only): copies argv[1] to the new file argv[2] in chunks
#: of argv[3] bytes, fsyncs it and prints progress lines and finally "copied <bytes> <crc32>". The
#: source is memory-mapped: each chunk is checksummed where it lies in the page cache and written from
#: there with ``O_DIRECT``, straight to the disk, so no byte is copied through this process and the copy
#: neither costs the kernel a second page-cache copy of the database nor pushes the database out of the
#: cache. Where the file system refuses ``O_DIRECT`` (tmpfs, some network file systems), or for a tail
#: that is not a whole number of blocks, the writes go through the page cache.
_CHUNK_COPIER = """
import fcntl, mmap, os, sys, zlib
from concurrent.futures import ThreadPoolExecutor
source, target, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
BLOCK = 4096
src = os.open(source, os.O_RDONLY)
try:
    dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_DIRECT, 0o644)
    direct = True
except OSError:
    dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    direct = False

def buffered():
    fcntl.fcntl(dst, fcntl.F_SETFL, fcntl.fcntl(dst, fcntl.F_GETFL) & ~os.O_DIRECT)
    return False

def write(part, offset):
    # in the writer thread, one chunk at a time, while the next chunk is checksummed
    global direct
    n = len(part)
    if direct and n % BLOCK:
        direct = buffered()
    written = 0
    while written < n:
        try:
            step = os.pwrite(dst, part[written:], offset + written)
        except OSError:
            if not direct:
                raise
            direct = buffered()
            continue
        if step == 0:
            raise OSError(f"no progress writing {target} at byte {offset + written}")
        written += step
    part.release()

total = os.fstat(src).st_size
mapped = mmap.mmap(src, 0, access=mmap.ACCESS_READ) if total else None
if mapped is not None and hasattr(mapped, "madvise"):
    mapped.madvise(mmap.MADV_SEQUENTIAL)
view = memoryview(mapped) if mapped is not None else memoryview(b"")
done = crc = 0
with ThreadPoolExecutor(1) as writer:
    pending = None
    while done < total:
        n = min(chunk, total - done)
        part = view[done:done + n]
        crc = zlib.crc32(part, crc)
        if pending is not None:
            pending.result()
        pending = writer.submit(write, part, done)
        done += n
        print("progress", done, total, flush=True)
    if pending is not None:
        pending.result()
os.fsync(dst)
os.close(dst)
view.release()
if mapped is not None:
    mapped.close()
os.close(src)
print("copied", done, crc, flush=True)
"""


def _copy_chunks(source: Path, target: Path, progress: CopyProgress | None) -> tuple[int, int]:
    """Copy ``source`` to ``target`` in a child process; returns (bytes copied, CRC-32 of them).

    A child, because closing a descriptor of the database file in this process would release the
    POSIX locks SQLite holds on that file here (the write lock of the caller among them)."""
    child = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _CHUNK_COPIER, str(source), str(target), str(FILE_CHUNK)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    result = None
    try:
        assert child.stdout is not None and child.stderr is not None
        for line in child.stdout:
            word, *numbers = line.split()
            if word == "progress" and progress:
                progress(int(numbers[0]), int(numbers[1]))
            elif word == "copied":
                result = int(numbers[0]), int(numbers[1])
        errors = child.stderr.read()
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()
    if child.returncode != 0 or result is None:
        last = errors.strip().splitlines()[-1:] or [f"exit {child.returncode}"]
        raise OSError(f"copying {source} to {target.name} failed: {last[0]}")
    return result


def _online_copy(source: Path, target: Path, progress: CopyProgress | None, pages_per_step: int) -> None:
    """SQLite's online backup in steps. Writers keep going between steps; when one changes the source
    the copy starts over, so after a few restarts it is taken in a single step (one read
    transaction, which in WAL mode does not stop writers either)."""
    src = sqlite3.connect(source, timeout=30)
    try:
        for steps in (pages_per_step, -1):
            dst = sqlite3.connect(target)
            try:
                src.backup(dst, pages=steps, progress=_watch(progress), sleep=STEP_SLEEP)
                return
            except _Restarting:
                continue
            finally:
                dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"online backup of {source} failed: {exc}") from exc
    finally:
        src.close()


class _Restarting(Exception):
    """The source changed under the copy too often."""


def _watch(progress: CopyProgress | None) -> Callable[[int, int, int], None]:
    state = {"remaining": None, "restarts": 0}

    def step(_status: int, remaining: int, total: int) -> None:
        if state["remaining"] is not None and remaining > state["remaining"]:
            state["restarts"] += 1
            if state["restarts"] > MAX_RESTARTS:
                raise _Restarting()
        state["remaining"] = remaining
        if progress:
            progress(total - remaining, total)

    return step


def _claim_name(partial: Path, dest: Path, prefix: str, suffix: str) -> Path:
    """Link ``partial`` under the first free name: minute stamp, then seconds, then a counter."""
    now = dt.datetime.now()
    candidates = [f"{prefix}_{now:%Y%m%d%H%M}", f"{prefix}_{now:%Y%m%d%H%M%S}"]
    candidates += [f"{prefix}_{now:%Y%m%d%H%M%S}_{n}" for n in range(1, 1000)]
    for stem in candidates:
        final = dest / f"{stem}{suffix}"
        try:
            os.link(partial, final)
        except FileExistsError:
            continue
        return final
    raise BackupError(f"no free backup name for {prefix} in {dest}")


def _restore_sqlite(source: Path, live: Path, progress: CopyProgress | None) -> None:
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    dst = sqlite3.connect(live, timeout=30)
    try:
        dst.execute("PRAGMA busy_timeout = 30000")
        # Writes go through the live database's own journal, so open connections see the new pages.
        src.backup(dst, pages=-1, progress=_watch(progress))
        dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as exc:
        raise BackupError(f"restore of {source.name} into {live} failed: {exc}") from exc
    finally:
        dst.close()
        src.close()


# --- PostgreSQL ---------------------------------------------------------------------------------


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise BackupError(
            f"{name} was not found on PATH; install the PostgreSQL client tools "
            f"(e.g. apt-get install postgresql-client) matching the server version"
        )
    return found


def _pg_target(engine: Engine) -> tuple[str, dict[str, str]]:
    """A libpq connection string without the password, and the environment that carries it."""
    url = make_url(engine.url.render_as_string(hide_password=False))
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    dsn = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return dsn, env


def _run(args: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=6 * 3600)
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{what} timed out") from exc
    if result.returncode != 0:
        raise BackupError(f"{what} failed (exit {result.returncode}): {result.stderr.strip()[:1000]}")
    return result


def _backup_postgres(engine: Engine, dest: Path, prefix: str) -> Path:
    pg_dump = _pg_tool("pg_dump")
    dsn, env = _pg_target(engine)
    partial = dest / f".{prefix}_{os.getpid()}_{time.monotonic_ns()}.partial"
    try:
        _run([pg_dump, "-Fc", "--no-owner", "-f", str(partial), "-d", dsn], env, "pg_dump")
        verify_postgres_backup(partial)
        return _claim_name(partial, dest, prefix, ".dump")
    finally:
        partial.unlink(missing_ok=True)


def verify_postgres_backup(path: str | Path) -> None:
    """Raise ``BackupError`` unless ``path`` is a readable ``pg_dump -Fc`` archive with the catalogue."""
    listing = _run([_pg_tool("pg_restore"), "--list", str(path)], dict(os.environ), "pg_restore --list")
    if "plan_versions" not in listing.stdout:
        raise BackupError(f"{Path(path).name} is not a plan database dump (no plan_versions table)")


def _restore_postgres(engine: Engine, source: Path) -> None:
    try:
        verify_postgres_backup(source)
    except BackupError as exc:
        raise BackupError(f"refusing to restore {source.name}: {exc}") from exc
    dsn, env = _pg_target(engine)
    engine.dispose()  # idle pooled connections would only wait on the restore's locks
    _run(
        [_pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
         "--exit-on-error", "-d", dsn, str(source)],
        env,
        "pg_restore",
    )  # fmt: skip
