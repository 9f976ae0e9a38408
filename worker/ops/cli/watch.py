"""``watch``: a live view of the queues, redrawn every interval until Ctrl-C. Rates are the
deltas of each queue's outcome counters between two frames."""

from __future__ import annotations

import time
from datetime import datetime

import click

from worker.ops.api import Ops, QueueStats
from worker.ops.cli.app import pass_ops
from worker.ops.cli.output import heading, on_terminal, table
from worker.protocol.connection import REDIS_DOWN, unreachable

Counters = dict[str, dict[str, int]]  # queue -> counter name -> value


@click.command()
@click.option(
    "--interval", "-i", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
    help="Seconds between refreshes.",
)  # fmt: skip
@pass_ops
def watch(ops: Ops, interval: float) -> None:
    """A live view of the queues, until Ctrl-C.

    Per queue: ready, running, delayed and dead jobs, and jobs done, failed and retried per
    second; the workers and their jobs in flight."""
    before: tuple[float, Counters] | None = None
    try:
        while True:
            try:
                text, before = frame(ops, interval, before)
            except REDIS_DOWN as e:  # keep watching: Redis restarts are worth seeing through
                text, before = (
                    click.style(f"{unreachable(ops.backend.url, e)}; retrying", fg="red"),
                    None,
                )
            if on_terminal():
                click.clear()
            click.echo(text)
            time.sleep(interval)
    except KeyboardInterrupt:
        return


def frame(
    ops: Ops, interval: float, before: tuple[float, Counters] | None
) -> tuple[str, tuple[float, Counters]]:
    """The text of one refresh, and the counters to take the next one's rates from."""
    queues = [ops.stats(q) for q in ops.queues()]
    workers = ops.workers()
    now = time.monotonic()
    counters = {q.queue: q.counters for q in queues}
    headers = ["QUEUE", "READY", "RUNNING", "DELAYED", "DEAD", "DONE/S", "FAILED/S", "RETRIED/S"]
    rows = [[*_counts(q), *_rates(q, now, before)] for q in queues]
    in_flight = sum(w.in_flight for w in workers)
    capacity = sum(w.concurrency for w in workers)
    title = f"jobs watch · {datetime.now():%H:%M:%S} · every {interval:g}s · Ctrl-C to quit"
    lines = [
        heading(title),
        table(headers, rows, lambda h, cell: "red" if h == "DEAD" and cell != "0" else None),
        f"\n{len(workers)} worker(s), {in_flight} job(s) in flight of {capacity} slots",
    ]
    return "\n".join(lines), (now, counters)


def _counts(q: QueueStats) -> tuple[object, ...]:
    return q.queue, q.ready, q.running, q.delayed, q.dead


def _rates(q: QueueStats, now: float, before: tuple[float, Counters] | None) -> list[str]:
    names = ("succeeded", "failed", "retried")
    if before is None or q.queue not in before[1]:
        return ["-"] * len(names)
    elapsed = max(now - before[0], 1e-6)
    old = before[1][q.queue]
    return [f"{(q.counters.get(n, 0) - old.get(n, 0)) / elapsed:.1f}" for n in names]
