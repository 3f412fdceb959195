"""Reading inputs in worker processes (``--jobs N``), merged as if read here.

Each worker process owns some of the inputs and runs their readers; the records come
back in batches, in each input's own order, and the caller merges the inputs' streams
in time order exactly as it merges local readers (``pipeline.read_into``). So the
aggregator sees the same records in the same order whatever N is: the same
connection in two inputs still meets itself there and counts once, and the output is
byte for byte the one of ``--jobs 1``.

The parsing and filtering, most of the work (a Hubble line in ten is kept, a capture
keeps one packet in ten or more), runs in the workers; the process that merges
unpacks the records, aggregates them and writes the output. Each worker produces a
batch only when asked for it, a few ahead of what the merge has taken from each input,
so memory holds a few batches per input (``WorkerReaders.AHEAD``), not the inputs.

What each reader counted (``ReadReport``) comes back with its input's last batch and
is added to the caller's report; its format when the input starts, so the inputs keep
their order in the report. An input error ends that input's stream where the reader
raised it, after the records it yielded before.

A progress display (``ReadOptions.watcher``) stays in the caller's process: each
worker follows its inputs with a watcher of its own (the display's ``for_worker``),
and every batch says how many bytes of its input were read, which the caller hands to
the display (``read_elsewhere``) as the batch arrives.
"""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
import threading
from collections import deque
from dataclasses import fields, replace
from multiprocessing.connection import wait
from operator import attrgetter
from typing import Any, Callable, Iterator

from generator import now_reading
from recorder.errors import FlowpolError
from recorder.listed import ListedRows
from recorder.report import ReadReport
from recorder.schema import FlowRecord, LogRecord
from recorder.sources import ReadOptions, read_inputs
from recorder.sources.fastrecord import flow_record_maker

BATCH = 4096
_SERIALS = itertools.count()
_FIELDS = tuple(f.name for f in fields(FlowRecord))
_flow_values = attrgetter(*_FIELDS)
_flow_from_values = flow_record_maker(*_FIELDS)


# The fields whose values the records of an input share: endpoints and services.
_SRC, _DST, _SERVICE = (_FIELDS.index(name) for name in ("src", "dst", "service"))
# Objects a packer numbers before it starts again (a hostile input can make every
# endpoint distinct; a cluster has a few thousand).
_TABLE_LIMIT = 50_000


class _Packer:
    """One input's batches, in a worker. FlowRecords go as tuples of their fields (a
    third of the cost of pickling the dataclasses), and each endpoint and service as a
    number: its object is sent the first time, with the batch that first uses it.
    Unpickling a dataclass is ~15 us (``__setstate__`` looks up its fields each time),
    and a batch of 4,096 records of a cluster of 2,000 pods holds thousands of distinct
    endpoints: sent once per input instead of once per batch, they no longer are most
    of the merging process's time. ``_Unpacker`` is the other end."""

    def __init__(self) -> None:
        self._numbers: dict[int, int] = {}  # id(object) -> number
        self._objects: list[Any] = []  # by number; held, so that no id is reused

    def pack(self, records: list[LogRecord]) -> bytes:
        numbers = self._numbers
        objects = self._objects
        restart = len(objects) > _TABLE_LIMIT
        if restart:
            numbers.clear()
            objects.clear()
        first_new = len(objects)
        rows: list[Any] = []
        for r in records:
            if type(r) is not FlowRecord:
                rows.append(r)
                continue
            row = list(_flow_values(r))
            for k in (_SRC, _DST, _SERVICE):
                value = row[k]
                n = numbers.get(id(value))
                if n is None:
                    n = numbers[id(value)] = len(objects)
                    objects.append(value)
                row[k] = n
            rows.append(tuple(row))
        return pickle.dumps((restart, objects[first_new:], rows),
                            protocol=pickle.HIGHEST_PROTOCOL)


class _Unpacker:
    """The records of one input's batches, in their order (see ``_Packer``)."""

    def __init__(self) -> None:
        self._objects: list[Any] = []

    def unpack(self, data: bytes) -> list[LogRecord]:
        restart, new, rows = pickle.loads(data)
        objects = self._objects
        if restart:
            objects.clear()
        objects.extend(new)
        make = _flow_from_values
        out: list[LogRecord] = []
        for r in rows:
            if type(r) is tuple:
                row = list(r)
                row[_SRC] = objects[row[_SRC]]
                row[_DST] = objects[row[_DST]]
                row[_SERVICE] = objects[row[_SERVICE]]
                out.append(make(*row))
            else:
                out.append(r)
        return out


def _serve(conn: Any, paths: dict[int, str], options: ReadOptions, fmt: str | None,
           strict: bool, make_watcher: Callable[[], Any] | None) -> None:
    """A worker: answers "next batch of input i" until told to stop (None).
    ``make_watcher``: a watcher per input, whose ``bytes_read()`` each batch reports."""
    streams: dict[int, Iterator[LogRecord]] = {}
    packers: dict[int, _Packer] = {}
    reports: dict[int, ReadReport] = {}
    watchers: dict[int, Any] = {}
    finished: set[int] = set()  # asked for more than there was: nothing to send
    try:
        while True:
            i = conn.recv()
            if i is None:
                return
            if i in finished:
                continue
            stream = streams.get(i)
            if stream is None:
                reports[i] = ReadReport(strict=strict)
                mine = options
                if make_watcher is not None:
                    mine = replace(options, watcher=watchers.setdefault(i, make_watcher()))
                stream = streams[i] = read_inputs([paths[i]], reports[i], mine, fmt)
                packers[i] = _Packer()
            report = reports[i]
            batch: list[LogRecord] = []
            error: BaseException | None = None
            done = False
            try:
                size = 0
                for rec in stream:
                    batch.append(rec)
                    # a ListedRows stands for its rows: a batch holds ~BATCH records
                    size += len(rec.rows) if type(rec) is ListedRows else 1
                    if size >= BATCH:
                        break
                else:
                    done = True
            except Exception as e:  # noqa: BLE001 - handed to the caller, raised there
                error, done = e, True
            try:
                payload = pickle.dumps((error,), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - an exception that does not pickle
                payload = pickle.dumps((RuntimeError(f"{type(error).__name__}: {error}"),))
            formats = dict(report.formats)
            final = report if done else None
            watcher = watchers.get(i)
            read = watcher.bytes_read() if watcher is not None else None
            conn.send_bytes(pickle.dumps((i, packers[i].pack(batch), done, formats, final,
                                          payload, read), protocol=pickle.HIGHEST_PROTOCOL))
            if done:
                del streams[i], reports[i], packers[i]
                if watcher is not None:
                    watcher.close()
                    del watchers[i]
                finished.add(i)
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return


class WorkerReaders:
    """N worker processes reading a group of inputs; ``stream(i)`` yields input i's
    records as ``read_inputs([path_i], report, ...)`` would here. Use as a context
    manager: leaving it stops the workers (also when the merge stopped early).

    Up to ``AHEAD`` batches per input are asked for before the merge takes them, and
    a thread of this process receives them as they come, so the workers keep reading
    while this process does something else (loads the snapshot, aggregates)."""

    AHEAD = 16

    def __init__(self, paths: list[str], report: ReadReport, options: ReadOptions,
                 fmt: str | None, jobs: int) -> None:
        self.paths = list(paths)
        self._report = report
        # the caller's progress display, if it can follow workers; the workers never
        # touch it (see the module docstring)
        watcher = options.watcher
        self._watcher = watcher if hasattr(watcher, "read_elsewhere") else None
        make_watcher = self._watcher.for_worker if self._watcher is not None else None
        self._serial = next(_SERIALS)  # names this group's inputs to the watcher
        options = replace(options, watcher=None)
        n = max(1, min(jobs, len(paths)))
        ctx = multiprocessing.get_context("fork")
        self._owner = [i % n for i in range(len(paths))]
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        for w in range(n):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_serve, daemon=True, args=(
                theirs, {i: p for i, p in enumerate(paths) if self._owner[i] == w},
                options, fmt, report.strict, make_watcher))
            proc.start()
            theirs.close()
            self._conns.append(mine)
            self._procs.append(proc)
        self._send_locks = [threading.Lock() for _ in range(n)]
        self._cond = threading.Condition()
        self._answers: dict[int, deque[tuple[Any, ...]]] = {i: deque() for i in range(len(paths))}
        self._asked = [0] * len(paths)  # requests not answered yet
        self._finished: set[int] = set()  # inputs whose last batch came
        self._lost = False  # a worker ended without being told to
        self._receiver = threading.Thread(target=self._receive, daemon=True)
        self._receiver.start()

    def __enter__(self) -> WorkerReaders:
        return self

    def __exit__(self, *exc: object) -> None:
        for w, conn in enumerate(self._conns):
            try:
                with self._send_locks[w]:
                    conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self._receiver.join(timeout=5)
        for conn in self._conns:
            conn.close()

    def _receive(self) -> None:
        """Answers from every worker into their inputs' queues, as they come."""
        alive = list(self._conns)
        while alive:
            for conn in wait(alive):
                try:
                    answer = pickle.loads(conn.recv_bytes())
                except (EOFError, OSError):
                    alive.remove(conn)
                    with self._cond:
                        self._lost = True
                        self._cond.notify_all()
                    continue
                i = answer[0]
                if self._watcher is not None and answer[6] is not None:
                    self._watcher.read_elsewhere((self._serial, i), answer[6], answer[2])
                with self._cond:
                    self._answers[i].append(answer)
                    self._asked[i] -= 1
                    if answer[2]:
                        self._finished.add(i)
                    self._cond.notify_all()

    def _ask(self, i: int, n: int) -> None:
        w = self._owner[i]
        with self._send_locks[w]:
            for _ in range(n):
                self._conns[w].send(i)

    def _top_up(self, i: int) -> None:
        with self._cond:
            if i in self._finished:
                return
            n = self.AHEAD - self._asked[i] - len(self._answers[i])
            if n <= 0:
                return
            self._asked[i] += n
        self._ask(i, n)

    def prime(self) -> None:
        """Ask every input's first batches at once, so all workers start reading."""
        for i in range(len(self.paths)):
            self._top_up(i)

    def _next_answer(self, i: int) -> tuple[Any, ...]:
        self._top_up(i)
        with self._cond:
            while not self._answers[i]:
                if self._lost and not self._receiver.is_alive():
                    raise RuntimeError("a reading worker ended unexpectedly")
                self._cond.wait(1.0)
            return self._answers[i].popleft()

    def stream(self, i: int) -> Iterator[LogRecord]:
        first = True
        unpacker = _Unpacker()
        while True:
            _, data, done, formats, final, payload, _ = self._next_answer(i)
            if first:
                for path, name in formats.items():
                    self._report.formats.setdefault(path, name)
                first = False
            records = unpacker.unpack(data)
            (error,) = pickle.loads(payload)
            if final is not None:
                self._report.merge(final)
            yield from records
            if error is not None:
                if isinstance(error, FlowpolError):
                    raise error
                # A bug met in the worker: the crash message names the input, as it
                # does for one read here.
                with now_reading.reading(f"input {self.paths[i]!r}"):
                    raise error
            if done:
                return
