"""Running a backup's client tool (``pg_dump``, ``mariadb-dump``, ``pg_restore``, ...) with its output
read, or its input fed, as a stream, under the run's cancel and deadline; the whole process tree is
killed when the caller gives up."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from upkeep import secrets as secret_refs
from upkeep.engine.context import kill_tree
from upkeep.errors import UserError


def drain(stream, into: list[bytes]) -> None:
    for line in iter(lambda: stream.read(65536), b""):
        into.append(line)


def run_streaming(
    ctx, argv: list[str], env: dict[str, str], consume: Callable[[Any], None] | None, stdin: Any = None
) -> str:
    """Run ``argv``; ``consume(proc.stdout)`` reads its output in this thread. Returns stderr text.

    The process tree is killed if ``consume`` raises (cancel, deadline, disk full). A non-zero exit
    raises ``UserError`` with the tail of stderr.
    """
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE if consume else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    err: list[bytes] = []
    drainer = threading.Thread(target=drain, args=(proc.stderr, err), daemon=True)
    drainer.start()
    try:
        if consume:
            consume(proc.stdout)
        while True:
            # the tool's stderr closes as it exits, and the drainer's end wakes this at once: a
            # wait with a timeout polls, and saw an exit up to 50 ms late (25 ms on average)
            drainer.join(timeout=0.2)
            try:
                proc.wait(timeout=0.2 if not drainer.is_alive() else 0)
                break
            except subprocess.TimeoutExpired:
                ctx.check_cancelled()
    except BaseException:
        kill_tree(proc.pid)
        proc.wait()
        raise
    finally:
        drainer.join(timeout=5)
        if proc.stdout:
            proc.stdout.close()
    text = b"".join(err).decode("utf-8", "replace")
    if proc.returncode != 0:
        tail = " ".join(text.strip().splitlines()[-3:])
        raise UserError(f"{Path(argv[0]).name} exited with {proc.returncode}: {secret_refs.scrub(tail, ctx.secrets)}")
    return text


def run_fed(
    ctx, argv: list[str], env: dict[str, str], chunks: Iterable[bytes], consume: Callable[[Any], None] | None = None
) -> str:
    """``run_streaming`` with ``chunks`` written to the process's standard input by a thread.

    The input is one end of a Unix socket pair, not a pipe: a tool that reads its standard input
    4 KiB at a time (pg_restore's stdio does) wakes a pipe's blocked writer at every 4 KiB it takes,
    a socket's only once half its buffer is free (benchmarks/README.md has the figures).

    A process that stops reading early (``pg_restore --list`` has what it needs after the table of
    contents) ends the feeding quietly. An exception raised by ``chunks`` (a corrupt artifact) ends
    the input there and is raised here, in place of the process's complaint about a cut-off input.
    """
    ours, theirs = socket.socketpair()
    failure: list[BaseException] = []

    def feed() -> None:
        try:
            with ours:
                for chunk in chunks:
                    ours.sendall(chunk)
                ours.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the process exited: run_streaming reports how
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)

    feeder = threading.Thread(target=feed, name="upkeep-feed", daemon=True)
    feeder.start()
    try:
        with theirs:
            text = run_streaming(ctx, argv, env, consume, stdin=theirs)
    except UserError:
        feeder.join(timeout=30)
        if failure:
            raise failure[0] from None
        raise
    feeder.join(timeout=30)
    if failure:
        raise failure[0]
    return text
