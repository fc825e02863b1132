"""Run calls side by side, one thread each, so that no call can hold back or stop another.

Used to deliver to every target at once (`deliver_all`): a target that hangs until
its deadline then delays no other, and whatever one raises is its own.

Workers are daemon threads started with the signals the main thread handles
blocked: SIGTERM and Ctrl-C still reach the main thread while it waits (a signal
the kernel gave a worker would not wake it), and a worker stuck in a system call
never keeps the process alive once the main thread gives up on it (the daemon's
STOP_GRACE). Workers must not touch what the caller shares between calls: plugin
hooks go through `HeldHooks`, and the caller applies results once all are back.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

import pluggy

from ..errors import SyncdError
from ..log import get_logger
from .deliver import TargetReport

log = get_logger(__name__)

# Signals whose Python handlers must run promptly: Python runs handlers in the main
# thread only, and only a signal delivered to it interrupts the call it is blocked in.
MAIN_THREAD_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM)

# An unforeseen error is reported with at most this much of its message.
UNEXPECTED_DETAIL = 200
UNEXPECTED_HINT = "the other targets went on; this one is tried again on the next pass"

T = TypeVar("T")


def with_signals_blocked(start: Callable[[], None]) -> None:
    """Call `start` (a thread's start) with MAIN_THREAD_SIGNALS blocked: the threads it makes inherit that."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, MAIN_THREAD_SIGNALS)
    try:
        start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def run_apart(calls: Sequence[Callable[[], T]]) -> list[T | Exception]:
    """Run each call in a thread of its own and wait for all: each one's result, or the Exception it raised.

    Anything else a call raises (KeyboardInterrupt, SystemExit) is raised here once all are
    done, as it would have been without threads.
    """
    outcomes: list[T | BaseException] = [None] * len(calls)  # each worker writes only its own slot

    def work(i: int) -> None:
        try:
            outcomes[i] = calls[i]()
        except BaseException as e:  # the thread's edge: nothing above it would see this
            outcomes[i] = e

    workers = [threading.Thread(target=work, args=(i,), name=f"syncd-fanout-{i}", daemon=True)
               for i in range(len(calls))]
    for worker in workers:
        with_signals_blocked(worker.start)
    for worker in workers:
        worker.join()  # interruptible: a signal handler that raises (the daemon's Abandon) ends the wait
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome
    return outcomes


class HeldHooks:
    """Stands in for the plugin manager in a worker: hook calls are kept, and `call_on` makes them later.

    Plugins are written for one thread; the caller makes the calls on its own.
    """

    def __init__(self):
        self.hook = self
        self.calls: list[tuple[str, dict]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("_"):
            raise AttributeError(name)  # not a hook: copy, pickle and friends probe for these
        return lambda **kwargs: self.calls.append((name, kwargs))

    def call_on(self, pm: pluggy.PluginManager) -> None:
        for name, kwargs in self.calls:
            getattr(pm.hook, name)(**kwargs)


def deliver_all(deliveries: list[tuple[str, Callable[[HeldHooks], TargetReport]]],
                pm: pluggy.PluginManager) -> list[TargetReport]:
    """Run every target's delivery at once; the reports, in order.

    Each delivery is (where, call): `where` names the target in the report if the call
    raises, and the call gets hooks that are held, then made here once all are done.
    Any Exception a delivery raises fails that target alone: a SyncdError as it says, any
    other as one line naming it, with the traceback in the debug log.
    """
    held = [HeldHooks() for _ in deliveries]
    outcomes = run_apart([partial(call, hooks) for (_, call), hooks in zip(deliveries, held)])
    reports = []
    for (where, _), outcome in zip(deliveries, outcomes):
        if isinstance(outcome, SyncdError):
            outcome = TargetReport(where, False, None, error=str(outcome), hint=outcome.hint,
                                   exit_code=outcome.exit_code)
        elif isinstance(outcome, Exception):
            log.debug("%s: delivery failed unexpectedly", where, exc_info=outcome)
            outcome = TargetReport(where, False, None, error=unforeseen(outcome), hint=UNEXPECTED_HINT)
        reports.append(outcome)
    for hooks in held:
        hooks.call_on(pm)
    return reports


def unforeseen(error: BaseException) -> str:
    """One line for an error nobody foresaw: its kind, and the start of its message."""
    lines = str(error).strip().splitlines()
    return f"unexpected {type(error).__name__}" + (f": {lines[0][:UNEXPECTED_DETAIL]}" if lines else "")
