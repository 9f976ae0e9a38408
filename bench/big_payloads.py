"""The worker's memory with big jobs in flight: enqueue jobs whose argument is near the
1 MiB payload limit, run one worker process with a concurrency above their number, and
print its peak RSS while they run.

    python bench/big_payloads.py [--jobs 400] [--kib 1000] [--seconds 4] [-- runworker options]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
os.environ.setdefault("TASKS_PREFIX", f"bench-big-{uuid.uuid4().hex[:8]}")

import django  # noqa: E402

django.setup()

from django.tasks import default_task_backend  # noqa: E402

from bench import tasks as workload  # noqa: E402
from bench.run import rss_mb  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--kib", type=int, default=1000, help="size of each job's argument")
    parser.add_argument("--seconds", type=float, default=4.0, help="each job's wait")
    parser.add_argument("worker_options", nargs="*", help="after --: more runworker options")
    args = parser.parse_args()
    env = {**os.environ, "REDIS_URL": default_task_backend.url}
    command = [sys.executable, "manage.py", "runworker", "--no-scheduler",
               "--concurrency", str(args.jobs * 2), *args.worker_options]  # fmt: skip
    worker = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    client = default_task_backend.broker.sync
    try:
        time.sleep(2.0)
        idle = rss_mb(worker.pid)
        data = "x" * (args.kib * 1024 - 64)  # the message's other fields fit in the rest
        results = workload.hold.enqueue_many([((data, args.seconds), {})] * args.jobs)
        peak, deadline = idle, time.monotonic() + args.seconds * args.jobs + 60
        done_key = default_task_backend.broker.keys.stats("default")
        while int(client.hget(done_key, "succeeded") or 0) < len(results):
            if time.monotonic() > deadline:
                raise SystemExit("the jobs did not finish")
            peak = max(peak, rss_mb(worker.pid))
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        for key in client.scan_iter(f"{default_task_backend.broker.keys.prefix}:*", count=1000):
            client.delete(key)
    print(f"{args.jobs} jobs of {args.kib} KiB, {' '.join(args.worker_options) or 'defaults'}")
    print(f"worker RSS  idle {idle:.0f} MB, peak {peak:.0f} MB")


if __name__ == "__main__":
    main()
