"""Calls that may crash the interpreter, run in a child process.

A native op fed hostile input may take the process down (SIGSEGV, an abort, the
kernel's OOM killer). Run in the test process, that ends the whole test run; run here,
it is one failed case. :class:`IsolatedCalls` keeps one child alive across calls (a
child per call would cost an interpreter start each) and starts a new one after a crash.

The arguments reach the child pickled, as they would through multiprocessing, a
DataLoader worker or Ray; the result comes back the same way. The child's address
space is capped, so an oversized allocation fails there instead of paging the machine.
"""

from __future__ import annotations

import importlib
import os
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

# Address space of the child: room for numpy, the core and test-sized arrays, far
# below any allocation sized from an int64 near its limits.
CHILD_ADDRESS_SPACE = 6 << 30
CALL_TIMEOUT_S = 60.0
_HEADER = struct.Struct("<Q")


@dataclass(frozen=True)
class Outcome:
    """What one isolated call did: returned ``value``, raised ``error_type: message``,
    or ended the child (``crashed`` holds how)."""

    value: Any = None
    error_type: str | None = None
    message: str = ""
    crashed: str | None = None

    @property
    def raised(self) -> bool:
        return self.error_type is not None


def resolve(target: str) -> Any:
    """``"package.module:attr.attr"`` -> the object."""
    module_name, _, path = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _write_frame(stream: Any, payload: Any) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


class _TimedOut(Exception):
    pass


def _read_exactly(fd: int, n_bytes: int, timeout_s: float | None) -> bytes | None:
    """``n_bytes`` from ``fd``, or None at end of file; _TimedOut after ``timeout_s`` of silence."""
    chunks, remaining = [], n_bytes
    while remaining:
        if timeout_s is not None and not select.select([fd], [], [], timeout_s)[0]:
            raise _TimedOut
        chunk = os.read(fd, remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int, timeout_s: float | None) -> Any | None:
    header = _read_exactly(fd, _HEADER.size, timeout_s)
    if header is None:
        return None
    body = _read_exactly(fd, _HEADER.unpack(header)[0], timeout_s)
    return None if body is None else pickle.loads(body)


class IsolatedCalls:
    """``calls.run("ospo_fast:owen_values", 3, rows, values)`` in a child process."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = {**os.environ, **(env or {})}
        self.child: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self.child is None or self.child.poll() is not None:
            self.child = subprocess.Popen(
                [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                env=self.env,
            )
        return self.child

    def run(self, target: str, *args: Any, canonical_dtypes: bool = False, **kwargs: Any) -> Outcome:
        """Call ``target(*args, **kwargs)`` in the child. ``canonical_dtypes`` gives the
        child's arrays numpy's own dtype objects again, as if they had never been pickled."""
        child = self._start()
        try:
            _write_frame(child.stdin, (target, args, kwargs, canonical_dtypes))
        except BrokenPipeError:
            return self._ended(child)
        try:
            reply = _read_frame(child.stdout.fileno(), CALL_TIMEOUT_S)
        except _TimedOut:
            child.kill()
            child.wait()
            return Outcome(crashed=f"no reply within {CALL_TIMEOUT_S:.0f} s")
        return self._ended(child) if reply is None else reply

    def _ended(self, child: subprocess.Popen) -> Outcome:
        code = child.wait()
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        return Outcome(crashed=how)

    def close(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.stdin.close()
            self.child.wait()
        self.child = None


def _canonical(value: Any) -> Any:
    import numpy as np

    return value.view(np.dtype(value.dtype.str)) if isinstance(value, np.ndarray) else value


def serve() -> None:
    """The child: read (target, args, kwargs) frames, call, write an Outcome frame."""
    channel_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the channel
    channel_in = sys.stdin.fileno()
    while True:
        request = _read_frame(channel_in, None)
        if request is None:
            return
        target, args, kwargs, canonical_dtypes = request
        if canonical_dtypes:
            args = tuple(_canonical(a) for a in args)
            kwargs = {name: _canonical(a) for name, a in kwargs.items()}
        try:
            outcome = Outcome(value=resolve(target)(*args, **kwargs))
        except Exception as error:  # every exception is reported; the checks judge it
            outcome = Outcome(error_type=type(error).__name__, message=str(error))
        try:
            _write_frame(channel_out, outcome)
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            _write_frame(channel_out, Outcome(error_type="UnpicklableResult", message=str(error)))


if __name__ == "__main__":
    # The child caps itself (a preexec_fn is unsafe in a parent with threads, as pytest's is).
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))
    # Imported by name, so the Outcome frames unpickle as hostile_isolation.Outcome in the parent.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from hostile_isolation import serve as serve_requests

    serve_requests()
