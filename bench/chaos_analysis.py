"""What the chaos soak found: the ledger (every execution, every acknowledged enqueue, every
fault and process event) set against the job hashes left in Redis at the end.

Guarantees checked (a failure makes the soak exit 1):

- every acknowledged job finished (SUCCESSFUL or FAILED), and no job stored in Redis is left
  unfinished after the drain;
- a job that ran to success more than once did so near a fault that explains it (a worker
  killed, stopped or cut off, Redis down): at least once, never silently twice;
- one job per periodic fire time;
- a job's stored result is the token its own execution returned, and each execution the
  ledger saw belongs to a job Redis knows;
- the soak's own retrying kinds (25 attempts) are not dead-lettered; the poison job and the
  malformed messages are.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import redis

from bench import chaos_ledger

OWN = "bench.chaos_app.tasks."
KIND_OF_TASK = {
    f"{OWN}io_job": "io",
    f"{OWN}cpu_job": "cpu",
    f"{OWN}flaky_job": "flaky",
    f"{OWN}unique_job": "unique",
    f"{OWN}probe": "probe",
    f"{OWN}tick": "tick",
    f"{OWN}poison_job": "poison",
}
MUST_SUCCEED = {"io", "delayed", "cpu", "flaky", "unique", "probe", "tick"}
MUST_FAIL = {"poison", "malformed"}


def scan_jobs(client: redis.Redis, prefix: str) -> dict[str, dict[str, Any]]:
    """Every job hash under ``prefix``: id -> task, status, attempts, run_after, result (read
    as the engine reads a job's record)."""
    from worker.protocol.keys import Keys
    from worker.results import JobRecord

    jobs: dict[str, dict[str, Any]] = {}
    for queue in ("default", "reports"):
        job_prefix = Keys(prefix).job_prefix(queue)
        keys = list(client.scan_iter(match=Keys(prefix).jobs_glob(queue), count=2000))
        for start in range(0, len(keys), 500):
            pipe = client.pipeline(transaction=False)
            for key in keys[start : start + 500]:
                pipe.hgetall(key)
            for key, fields in zip(keys[start : start + 500], pipe.execute(), strict=True):
                if not fields:
                    continue
                job_id = f"{queue}:{key.decode()[len(job_prefix) :]}"
                record = JobRecord.from_hash(job_id, fields)
                result = fields.get(b"v")
                jobs[job_id] = {
                    "task": record.task_path or "(malformed)",
                    "status": record.status.value,
                    "attempts": record.attempts,
                    "run_after": record.run_after.timestamp() if record.run_after else None,
                    "result": result.decode(errors="replace") if result else None,
                    "finished_at": record.finished_at.timestamp() if record.finished_at else None,
                }
    return jobs


def pct(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


def analyse(
    ledger_dir: Path, jobs: dict[str, dict[str, Any]], lease: float, began: float
) -> dict[str, Any]:
    lines = list(chaos_ledger.read(ledger_dir))
    acked: dict[str, dict[str, Any]] = {}
    starts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    ends: dict[str, list[dict[str, Any]]] = defaultdict(list)
    faults: list[dict[str, Any]] = []
    probes: dict[int, str] = {}
    deaths: list[dict[str, Any]] = []
    for line in lines:
        match line["e"]:
            case "acked":
                acked.setdefault(line["j"], line)
            case "start":
                starts[line["j"]].append(line)
            case "end":
                ends[line["j"]].append(line)
            case "fault-end":
                faults.append(line)
            case "probe":
                probes[line["n"]] = line["j"]
            case "proc" if line.get("planned") is False:
                deaths.append(line)
    faults.sort(key=lambda f: f["started"])
    broken: list[str] = []

    def kind_of(job_id: str) -> str:
        if job_id in acked:
            return acked[job_id]["k"]
        task = jobs.get(job_id, {}).get("task", "?")
        return KIND_OF_TASK.get(task, task)

    # 1. Acknowledged and never finished; stored and never finished.
    lost = [j for j in acked if j not in jobs]
    unfinished = [
        j for j in acked if j in jobs and jobs[j]["status"] not in ("SUCCESSFUL", "FAILED")
    ]
    stored_unfinished = [
        j
        for j, job in jobs.items()
        if job["status"] not in ("SUCCESSFUL", "FAILED") and j not in acked
    ]
    never = len(lost) + len(unfinished)
    if never:
        broken.append(
            f"{never} acknowledged jobs never finished "
            f"(lost: {lost[:5]}, unfinished: {unfinished[:5]})"
        )
    if stored_unfinished:
        broken.append(
            f"{len(stored_unfinished)} stored jobs never finished: {stored_unfinished[:5]}"
        )

    # 2. Jobs that ran to success more than once, each with the fault nearest to it.
    events = [(f["started"], f["lifted"], f"fault #{f['n']} {f['kind']}") for f in faults]
    events += [
        (d["t"], d["t"], f"{d['name']} pid {d['p']} died (exit {d.get('code')})") for d in deaths
    ]
    slack = 2 * lease + 16  # a lease to notice, one to hand on, the 15 s of stray leases
    duplicates = []
    for job_id, ended in ends.items():
        ok = [e for e in ended if e.get("ok")]
        if len(ok) < 2:
            continue
        first = min(s["t"] for s in starts[job_id]) if starts[job_id] else ok[0]["t"]
        last_start = max((s["t"] for s in starts[job_id]), default=ok[-1]["t"])
        near = [ev for ev in events if ev[0] <= last_start and ev[1] + slack >= first]
        nearest = min(events, key=lambda ev: abs(ev[0] - first), default=None)
        duplicates.append(
            {
                "job": job_id,
                "kind": kind_of(job_id),
                "runs": len(ok),
                "first_start": round(first - began, 2),
                "last_start": round(last_start - began, 2),
                "explained_by": near[-1][2] if near else None,
                "nearest_fault": nearest[2] if nearest else None,
                "pids": [e["p"] for e in ok],
            }
        )
    unexplained = [d for d in duplicates if not d["explained_by"]]
    if unexplained:
        broken.append(
            f"{len(unexplained)} jobs ran more than once with no fault near them: "
            f"{[d['job'] for d in unexplained[:5]]}"
        )

    # 3. Periodic: one job per fire time.
    fires: dict[float, list[str]] = defaultdict(list)
    for job_id, job in jobs.items():
        if job["task"] == f"{OWN}tick" and job["run_after"] is not None:
            fires[job["run_after"]].append(job_id)
    doubled = {t: ids for t, ids in fires.items() if len(ids) > 1}
    if doubled:
        broken.append(
            f"{len(doubled)} periodic fire times with more than one job: "
            f"{list(doubled.values())[:3]}"
        )
    times = sorted(fires)
    expected = round((times[-1] - times[0]) / 5) + 1 if times else 0
    off_grid = [t for t in times if abs(t / 5 - round(t / 5)) > 0.001]
    missed = []
    if times:
        have = {round(t / 5) for t in times}
        missed = [
            k * 5 for k in range(round(times[0] / 5), round(times[-1] / 5) + 1) if k not in have
        ]

    # 4. Results against the ledger.
    mismatched, no_execution, unexpected_dead, not_dead, too_many_attempts = [], [], [], [], []
    for job_id, job in jobs.items():
        kind = kind_of(job_id)
        own = job["task"].startswith(OWN)
        if job["status"] == "SUCCESSFUL" and own:
            tokens = {e.get("tok") for e in ends.get(job_id, []) if e.get("ok")}
            try:
                stored = json.loads(job["result"]) if job["result"] else None
            except ValueError:
                stored = job["result"]
            if not tokens:
                no_execution.append(job_id)
            elif stored not in tokens:
                mismatched.append(job_id)
        elif job["status"] == "SUCCESSFUL" and not starts.get(job_id):
            no_execution.append(job_id)
        if job["status"] == "FAILED" and kind in MUST_SUCCEED:
            unexpected_dead.append(job_id)
        if kind in MUST_FAIL and job["status"] != "FAILED":
            not_dead.append(job_id)
        seen = max((s.get("a") or 0 for s in starts.get(job_id, [])), default=0)
        if seen > job["attempts"]:
            too_many_attempts.append(job_id)
    unknown = [j for j in starts if j not in jobs]
    for what, ids in (
        ("stored results no execution of theirs returned", mismatched),
        ("successful jobs with no execution in the ledger", no_execution),
        ("jobs of retrying kinds dead-lettered", unexpected_dead),
        ("poison/malformed jobs not dead-lettered", not_dead),
        ("jobs the ledger saw on a later attempt than Redis counts", too_many_attempts),
        ("executions of jobs Redis does not know", unknown),
    ):
        if ids:
            broken.append(f"{len(ids)} {what}: {ids[:5]}")
    failed_reference = Counter(
        job["task"]
        for j, job in jobs.items()
        if job["status"] == "FAILED"
        and kind_of(j) not in MUST_FAIL
        and not job["task"].startswith(OWN)
    )

    # 5. Recovery per fault kind: from the fault's start until the jobs it held finished
    #    elsewhere and a job enqueued after it was lifted ran.
    first_end: dict[str, list[float]] = {j: sorted(e["t"] for e in es) for j, es in ends.items()}
    recovery: dict[str, list[float]] = defaultdict(list)
    per_fault = []
    for f in faults:
        if f.get("skipped"):
            per_fault.append({"n": f["n"], "kind": f["kind"], "skipped": f["skipped"]})
            continue
        marks = [f["lifted"]]
        stuck = []
        for job_id in f["held"]:
            later = [t for t in first_end.get(job_id, []) if t > f["started"]]
            if later:
                marks.append(later[0])
            elif jobs.get(job_id, {}).get("finished_at"):
                marks.append(max(jobs[job_id]["finished_at"], f["started"]))
            else:
                stuck.append(job_id)
        probe = probes.get(f["n"])
        probe_end = [e["t"] for e in ends.get(probe, []) if e.get("ok")] if probe else []
        if probe_end:
            marks.append(min(probe_end))
        seconds = max(marks) - f["started"]
        if probe_end:
            recovery[f["kind"]].append(seconds)
        per_fault.append(
            {
                "n": f["n"],
                "kind": f["kind"],
                "params": f["params"],
                "at": round(f["started"] - began, 2),
                "lasted": round(f["lifted"] - f["started"], 2),
                "held": len(f["held"]),
                "recovered_after": round(seconds, 2) if probe_end else None,
                "held_unfinished": stuck,
                "detail": f["detail"],
            }
        )

    # 6. Uniqueness (reported, not a guarantee under faults: Redis may lose a key on kill -9).
    unique_split = 0
    by_n: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for line in acked.values():
        if line["k"] == "unique":
            by_n[line["n"]].append(line)
    for acks in by_n.values():
        acks.sort(key=lambda a: a["t"])
        window_start, window_id = None, None
        for a in acks:
            if window_start is None or a["t"] - window_start > 59:
                window_start, window_id = a["t"], a["j"]
            elif a["j"] != window_id:
                unique_split += 1

    executions = sum(len(s) for s in starts.values())
    return {
        "broken": broken,
        "jobs_in_redis": len(jobs),
        "jobs_acknowledged": len(acked),
        "acknowledged_by_kind": dict(Counter(a["k"] for a in acked.values())),
        "executions": executions,
        "acknowledged_never_finished": never,
        "lost": lost,
        "unfinished": unfinished,
        "stored_never_finished": stored_unfinished,
        "duplicates": {
            "count": len(duplicates),
            "unexplained": len(unexplained),
            "jobs": duplicates,
        },
        "periodic": {
            "fire_times": len(times),
            "expected_between_first_and_last": expected,
            "more_than_one_job": {str(t): ids for t, ids in doubled.items()},
            "missed_fire_times": missed,
            "off_grid": off_grid,
        },
        "results": {
            "mismatched": mismatched,
            "no_execution": no_execution,
            "unexpected_dead_letters": unexpected_dead,
            "expected_dead_not_dead": not_dead,
            "attempts_beyond_redis": too_many_attempts,
            "unknown_to_redis": unknown,
            "reference_jobs_failed": dict(failed_reference),
        },
        "recovery_by_kind": {k: pct(v) for k, v in sorted(recovery.items())},
        "faults": per_fault,
        "unplanned_deaths": [
            {
                "at": round(d["t"] - began, 2),
                "name": d["name"],
                "pid": d["p"],
                "code": d.get("code"),
            }
            for d in deaths
        ],
        "unique_calls_split": unique_split,
    }


def plot(memory: list[dict[str, Any]], faults: list[dict[str, Any]], path: Path) -> str | None:
    """A PNG of worker, web and Redis memory over time; None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    t = [m["t"] for m in memory]
    for name in sorted({k for m in memory for k in m["rss"]}):
        top.plot(t, [m["rss"].get(name) for m in memory], label=name)
    top.set_ylabel("RSS (MB)")
    top.legend(fontsize=8, loc="upper left")
    bottom.plot(t, [m.get("redis_used") for m in memory], label="redis used_memory")
    bottom.plot(t, [m.get("redis_rss") for m in memory], label="redis RSS")
    bottom.set_ylabel("MB")
    bottom.set_xlabel("seconds since start")
    bottom.legend(fontsize=8, loc="upper left")
    for f in faults:
        if "at" in f:
            for ax in (top, bottom):
                ax.axvline(f["at"], color="grey", alpha=0.25, lw=0.8)
    top.set_title("chaos soak: memory (grey lines: faults)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)
