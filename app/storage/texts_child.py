"""A large plan's artifact texts, made by a forked child process while this one stores the rows.

Owns only the hand-over: the plan store decides when it is worth it (a ``both`` write of a large plan
on a system with ``fork``) and stores the texts in its one transaction as before. Making the texts is
pure Python work (the artifacts codec); storing the rows mostly waits on SQLite or PostgreSQL. On one
interpreter the two take turns; a child made by ``fork`` has the plan already (its memory is shared
copy-on-write, and the documents are mostly numpy columns, so little of it is ever copied) and makes
the texts on the other core meanwhile.

The child sends each ``(name, text)`` through a pipe, in the codec's order, as the parent reads them;
it makes the next text while one waits in the pipe, so at most the texts the parent has not read yet
are held twice. A failure in the child reaches the parent as the same ``ValueError`` the codec would
have raised in-process; a child that dies says so (with its signal). The child never touches the
database, logs nothing and leaves with ``os._exit``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import struct
import threading
from collections.abc import Iterator

from app.planning.model import PlanContent
from app.storage import codec_artifacts

#: A frame: kind (b"T" text, b"E" error, b"Z" end), name length, body length; then name and body.
_HEADER = struct.Struct("<cIQ")
#: Linux's largest pipe buffer by default (``/proc/sys/fs/pipe-max-size``): fewer, larger copies.
_PIPE_BYTES = 1 << 20


def available() -> bool:
    return hasattr(os, "fork")


class TextsChild:
    """Start the child at construction; iterate to receive its texts; :meth:`close` in any case."""

    def __init__(self, content: PlanContent):
        read_end, write_end = os.pipe()
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        pid = os.fork()
        if pid == 0:  # the child
            os.close(read_end)
            code = 1
            try:
                _send_texts(content, write_end)
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        self._pid: int | None = pid
        self._file = os.fdopen(read_end, "rb", buffering=_PIPE_BYTES)
        self._ended = False

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        while True:
            head = self._read(_HEADER.size, "a frame header")
            kind, name_size, body_size = _HEADER.unpack(head)
            name = self._read(name_size, "a name").decode("utf-8")
            body = self._read(body_size, name or "a message")
            if kind == b"T":
                yield name, body
            elif kind == b"E":
                self._ended = True
                raise ValueError(body.decode("utf-8"))
            else:
                self._ended = True
                return

    def close(self) -> None:
        """Let the child go: stopped when it has not finished, always reaped."""
        pid, self._pid = self._pid, None
        if pid is None:
            return
        self._file.close()
        if not self._ended:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)

    def _read(self, size: int, what: str) -> bytes:
        # a buffered read of n bytes reads into the bytes object it returns: the text is copied once
        data = self._file.read(size) if size else b""
        if len(data) != size:
            raise RuntimeError(
                f"the process making the artifact texts ended before sending {what}{self._death()}"
            )
        return data

    def _death(self) -> str:
        pid, self._pid = self._pid, None
        if pid is None:
            return ""
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return ""
        if os.WIFSIGNALED(status):
            return f" (killed by signal {os.WTERMSIG(status)})"
        return f" (exit status {os.waitstatus_to_exitcode(status)})"


def _send_texts(content: PlanContent, fd: int) -> None:
    """In the child: make each text and hand it to a sender thread, which writes it to the pipe while
    the next is made. When the parent is gone (the pipe is broken) the child stops making texts."""
    pending: queue.Queue = queue.Queue(maxsize=2)
    broken = threading.Event()

    def sender() -> None:
        with os.fdopen(fd, "wb", buffering=0) as out:
            while (frame := pending.get()) is not None:
                if broken.is_set():
                    continue  # the parent left: take frames off the queue until the end
                kind, name, body = frame
                try:
                    for part in (_HEADER.pack(kind, len(name), len(body)) + name, body):
                        view = memoryview(part)
                        while view:
                            view = view[out.write(view) :]
                except OSError:
                    broken.set()

    thread = threading.Thread(target=sender, name="scpln-texts-sender")
    thread.start()
    try:
        for name, body in codec_artifacts.iter_bytes(content):
            if broken.is_set():
                break
            pending.put((b"T", name.encode("utf-8"), body))
        else:
            pending.put((b"Z", b"", b""))
    except Exception as exc:  # the codec's refusal, sent as it would have been raised
        pending.put((b"E", b"", str(exc).encode("utf-8")))
    finally:
        pending.put(None)
        thread.join()
    if broken.is_set():
        raise BrokenPipeError("the plan store stopped reading the artifact texts")
