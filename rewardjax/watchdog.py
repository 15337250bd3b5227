"""Run a function in a worker thread and notice when it stalls.

jaxlib 0.10.2's CPU backend can deadlock: every XLA worker thread idle, the
caller waiting forever for a result (README, "A CPU deadlock"). Such a run
shows two signs at once, which a working run never shows together for long:
no progress report (``Heartbeat.beat``, called by the progress callback and
after each chunk) and almost no CPU time used by the process. ``supervise``
runs ``fn`` in a daemon thread while the calling (main) thread wakes every
``poll`` seconds, so that

* ``fn``'s result is returned and its exception re-raised;
* Ctrl-C (``KeyboardInterrupt``) reaches the main thread at once rather than
  after the compiled call returns; ``stop`` is set so that ``fn`` can end
  between chunks;
* after ``stall_timeout`` seconds with neither a heartbeat nor CPU use above
  ``cpu_fraction`` of one core, ``Stalled`` is raised (``stall_timeout=0``
  never does).

A thread blocked inside XLA cannot be cancelled; after ``Stalled`` or an
interrupt the caller reports and exits. XLA's threads can abort a normal
interpreter teardown while a computation runs ("terminate called without an
active exception"), so a program ends with ``end_process(code)`` then, which
skips the teardown.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Callable

THREAD_NAME = "rewardjax-train"


class Stalled(RuntimeError):
  """No progress and no CPU use for ``seconds`` (the CLI's exit status 5)."""

  def __init__(self, seconds: float):
    super().__init__(f"no progress and no CPU use for {seconds:.0f} s")
    self.seconds = seconds


class Heartbeat:
  """A counter bumped whenever training makes progress. The watchdog only asks whether
  it changed, so an increment lost between two threads beating at once does not matter."""

  def __init__(self):
    self.count = 0

  def beat(self) -> None:
    self.count += 1


class _Idle:
  """Seconds for which neither a heartbeat nor CPU use has been seen."""

  def __init__(self, heartbeat: Heartbeat, cpu_fraction: float):
    self.heartbeat, self.cpu_fraction = heartbeat, cpu_fraction
    self.seen = heartbeat.count
    self.wall, self.cpu = time.monotonic(), time.process_time()
    self.since = self.wall

  def seconds(self) -> float:
    wall, cpu = time.monotonic(), time.process_time()
    busy = cpu - self.cpu > self.cpu_fraction * (wall - self.wall)
    if busy or self.heartbeat.count != self.seen:
      self.since = wall
    self.seen, self.wall, self.cpu = self.heartbeat.count, wall, cpu
    return wall - self.since


def supervise(fn: Callable[[], Any], *, heartbeat: Heartbeat, stall_timeout: float,
              stop: threading.Event | None = None, poll: float | None = None,
              cpu_fraction: float = 0.02) -> Any:
  """``fn()``, run in a daemon thread; see the module docstring.

  Raises:
    Stalled: no heartbeat and CPU use below ``cpu_fraction`` of one core for
      ``stall_timeout`` seconds.
    KeyboardInterrupt: Ctrl-C while ``fn`` runs.
    BaseException: whatever ``fn`` raised.
  """
  outcome: dict[str, Any] = {}

  def target():
    try:
      outcome["value"] = fn()
    except BaseException as e:  # pylint: disable=broad-except  (re-raised in the caller)
      outcome["error"] = e

  thread = threading.Thread(target=target, name=THREAD_NAME, daemon=True)
  if poll is None:
    poll = 1.0 if stall_timeout <= 0 else min(1.0, max(stall_timeout / 5, 0.05))
  idle = _Idle(heartbeat, cpu_fraction)
  thread.start()
  try:
    while thread.is_alive():
      thread.join(poll)
      if thread.is_alive() and stall_timeout > 0 and idle.seconds() >= stall_timeout:
        raise Stalled(stall_timeout)
  except BaseException:
    if stop is not None:
      stop.set()
    raise
  if "error" in outcome:
    raise outcome["error"]
  return outcome["value"]


def end_process(code: int) -> None:
  """Flushes stdout and stderr and ends the process with ``code`` at once, without the
  interpreter's teardown (which a computation still running in XLA can abort)."""
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)  # pylint: disable=protected-access


__all__ = ["Heartbeat", "Stalled", "THREAD_NAME", "end_process", "supervise"]
