"""Sending Django's task signals from the event loop.

``Signal.asend`` runs every sync receiver through ``sync_to_async``: a thread hop per job
and signal, which would cost more than a no-op job itself. Django's own receivers only log,
so they are called inline; any other sync receiver (which may use the ORM) still goes
through ``asend``. And when Django's loggers are the only listeners and would drop the
record anyway, the worker need not even build the TaskResult to send (``unheard``).

Both shortcuts read Signal's private parts (``_live_receivers``, ``receivers``,
``_dead_receivers``). They are tried once, at import, on a signal of this module's own: a
Django that changed them gets plain ``Signal.asend`` for every signal, with a warning,
rather than a worker that fails each job.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from typing import Any

from django.dispatch import Signal
from django.tasks import signals as django_signals

_INLINE = {
    django_signals.log_task_enqueued,
    django_signals.log_task_started,
    django_signals.log_task_finished,
}
_LOGGER = logging.getLogger("django.tasks")


def unheard(signal: Signal, sender: type, level: int) -> bool:
    """Whether sending ``signal`` would have no effect: no receiver but Django's loggers,
    which would drop a record of ``level``."""
    return _fast and _only_loggers(signal, sender) and not _LOGGER.isEnabledFor(level)


_verdicts: dict[tuple[Any, ...], bool] = {}


def _only_loggers(signal: Signal, sender: type) -> bool:
    # Asked twice per job: remembered for as long as the receivers stay the same (Django's
    # own lookup keys name them; a receiver that died is a change too).
    dead = signal._dead_receivers  # type: ignore[attr-defined]
    key = (id(signal), sender, dead, *(r[0] for r in signal.receivers))
    verdict = _verdicts.get(key)
    if verdict is None:
        sync_receivers, async_receivers = signal._live_receivers(sender)
        verdict = not async_receivers and all(r in _INLINE for r in sync_receivers)
        if len(_verdicts) < 1000:
            _verdicts[key] = verdict
    return verdict


async def asend(signal: Signal, sender: type, **named: Any) -> None:
    """``signal.asend(sender, **named)``, with Django's own logging receivers called inline."""
    if not _fast:
        await signal.asend(sender, **named)
        return
    # _live_receivers is Django's own split into (sync, async) receivers (Django >= 5.0).
    sync_receivers, async_receivers = signal._live_receivers(sender)
    if not all(receiver in _INLINE for receiver in sync_receivers):
        await signal.asend(sender, **named)
        return
    for receiver in sync_receivers:
        receiver(signal=signal, sender=sender, **named)
    if async_receivers:
        await asyncio.gather(
            *(receiver(signal=signal, sender=sender, **named) for receiver in async_receivers)
        )


def _private_api_works() -> bool:
    """Whether Signal's private parts answer as the shortcuts read them, asked of a signal
    with one sync and one async receiver."""

    def sync_receiver(**kwargs: Any) -> None:
        pass

    async def async_receiver(**kwargs: Any) -> None:
        pass

    class Sender:
        pass

    probe = Signal()
    probe.connect(sync_receiver, weak=False)
    probe.connect(async_receiver, weak=False)
    try:
        hash((probe._dead_receivers, *(r[0] for r in probe.receivers)))  # type: ignore[attr-defined]
        live = probe._live_receivers(Sender)
        return (
            isinstance(live, tuple)
            and len(live) == 2
            and list(live[0]) == [sync_receiver]
            and list(live[1]) == [async_receiver]
        )
    except (AttributeError, TypeError, IndexError, KeyError):
        return False


def _choose() -> bool:
    """Whether to take the shortcuts: if not, says so with a warning."""
    works = _private_api_works()
    if not works:
        warnings.warn(
            "django.dispatch.Signal's private _live_receivers, receivers or _dead_receivers "
            "are missing or changed: the worker falls back to Signal.asend for every task "
            "signal (slower: a thread hop per signal and job)",
            RuntimeWarning,
            stacklevel=2,
        )
    return works


_fast = _choose()  # decided once: the shortcuts are on every job's path
