"""The chaos soak's faults: a schedule drawn from a seed, and how each fault is done.

The schedule is a list of (kind, parameters, pause before it), drawn with ``random.Random
(seed)``: the same seed gives the same faults, in the same order, with the same parameters
(when they happen drifts with how long each takes to lift). Kinds come in rounds, each round
every kind once in a shuffled order, so a short run still sees every kind. Faults never
overlap: one is lifted before the next begins, so each can be told apart in the analysis.

Each fault runs in a thread (it blocks: sleeps, waits for processes) and writes its start,
its end and what it saw into the soak's ledger. Before it starts, the jobs in flight on the
processes it hits are read from Redis ("held"): the analysis times how long they took to
finish, which is the fault's recovery time.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench import chaos_ledger
from bench.chaos_cluster import FAKETIME_LIB, LEDGER, Cluster, Slot, alive, descendants
from worker.protocol.keys import Keys
from worker.results import JobRecord

KINDS = (
    "worker-sigkill",
    "worker-sigterm",
    "worker-sigstop",
    "worker-kill-starting",
    "worker-kill-stopping",
    "supervisor-sigkill",
    "web-sigkill",
    "web-sigstop",
    "redis-kill9",
    "redis-shutdown-nosave",
    "redis-debug-sleep",
    "redis-client-pause",
    "redis-oom",
    "redis-misconf",
    "net-cut",
    "net-slow",
    "net-cut-mid-reply",
    "clock-skew",
    "poison-job",
    "malformed-message",
)


@dataclass
class Planned:
    n: int
    kind: str
    gap: float  # seconds after the previous fault was lifted
    params: dict[str, Any]


def schedule(seed: int, seconds: float, kinds: tuple[str, ...] = KINDS) -> list[Planned]:
    """Enough faults for ``seconds`` of soak (assuming ~6 s each with its gap)."""
    rng = random.Random(seed)
    planned: list[Planned] = []
    budget = seconds
    while budget > 0:
        round_ = list(kinds)
        rng.shuffle(round_)
        for kind in round_:
            p = Planned(len(planned), kind, round(rng.uniform(2, 6), 2), params(kind, rng))
            planned.append(p)
            budget -= p.gap + 4
            if budget <= 0:
                break
    return planned


def params(kind: str, rng: random.Random) -> dict[str, Any]:
    victim = rng.randrange(3)  # which worker slot
    match kind:
        case "worker-sigkill" | "worker-sigterm":
            return {"victim": victim, "restart_after": round(rng.uniform(0, 1.5), 2)}
        case "worker-sigstop":  # sometimes shorter than the lease (3 s), sometimes longer
            return {"victim": victim, "seconds": round(rng.uniform(1, 7), 2)}
        case "worker-kill-starting":
            return {"victim": victim, "after": round(rng.uniform(0.05, 2.5), 2)}
        case "worker-kill-stopping":
            return {"victim": victim, "after": round(rng.uniform(0.05, 3), 2)}
        case "web-sigkill":
            return {"restart_after": round(rng.uniform(0.2, 2), 2)}
        case "web-sigstop":
            return {"seconds": round(rng.uniform(1, 4), 2)}
        case "redis-kill9" | "redis-shutdown-nosave":
            return {"down": round(rng.uniform(0.2, 2.5), 2)}
        case "redis-debug-sleep" | "redis-client-pause":
            return {"seconds": round(rng.uniform(0.5, 2.5), 2)}
        case "redis-oom" | "redis-misconf":
            return {"seconds": round(rng.uniform(1.5, 6), 2)}
        case "net-cut":
            return {"seconds": round(rng.uniform(0.5, 4), 2)}
        case "net-slow":
            return {
                "delay": round(rng.uniform(0.02, 0.4), 3),
                "seconds": round(rng.uniform(2, 6), 2),
            }
        case "net-cut-mid-reply":
            return {"replies": rng.randint(1, 6)}
        case "clock-skew":
            return {
                "victim": rng.randrange(2),
                "skew": rng.choice([-1, 1]) * rng.randint(5, 90),
                "seconds": round(rng.uniform(8, 15), 2),
            }
        case _:
            return {"victim": victim}


@dataclass
class Done:
    """What a fault did: written to the ledger, read by the analysis."""

    planned: Planned
    started: float = 0.0
    lifted: float = 0.0
    held: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "n": self.planned.n,
            "kind": self.planned.kind,
            "params": self.planned.params,
            "started": self.started,
            "lifted": self.lifted,
            "held": self.held,
            "detail": self.detail,
            "skipped": self.skipped,
        }


class Injector:
    def __init__(self, cluster: Cluster, enqueue: Callable[[str], str | None]) -> None:
        self.c = cluster
        self.enqueue = enqueue  # enqueue(kind) -> job id: the poison job
        self.direct = cluster.redis.client()
        self.faketime = faketime_available()

    # Helpers -------------------------------------------------------------------------------

    def held(self, pids: list[int] | None = None) -> list[str]:
        """Ids leased to the worker processes ``pids`` (None: to any worker) right now."""
        ids: set[str] = set()
        prefix = self.c.prefix
        try:
            for queue in ("default", "reports"):
                for raw in self.direct.smembers(f"{prefix}:{{{queue}}}:workers"):
                    worker = raw.decode()
                    if pids is not None and int(worker.split(":")[1]) not in pids:
                        continue
                    members = self.direct.hkeys(Keys(prefix).wip(queue, worker))
                    ids |= {m.decode() for m in members}
        except (redis.RedisError, ValueError, IndexError):
            pass
        return sorted(ids)

    def worker_pids(self, slot: Slot) -> list[int]:
        return slot.tree()

    def run(self, planned: Planned) -> Done:
        done = Done(planned)
        method = getattr(self, "do_" + planned.kind.replace("-", "_"))
        done.started = time.time()
        chaos_ledger.record(
            "fault-start", LEDGER, n=planned.n, kind=planned.kind, params=planned.params
        )
        try:
            method(done, **planned.params)
        except Exception as e:  # a fault that could not be done is reported, not fatal
            done.detail["error"] = repr(e)
        done.lifted = time.time()
        chaos_ledger.record("fault-end", LEDGER, **done.as_json())
        return done

    def _restart(self, slot: Slot, **env: str) -> None:
        slot.spawn(**env)
        slot.held = False

    # Processes -----------------------------------------------------------------------------

    def do_worker_sigkill(self, done: Done, victim: int, restart_after: float) -> None:
        slot = self.c.workers[victim]
        slot.held = True
        done.held = self.held(self.worker_pids(slot))
        for pid in descendants(slot.pid):  # a supervisor's children stop once it is gone
            self.c.orphans.append(pid)
        slot.kill()
        time.sleep(restart_after)
        self._restart(slot)

    def do_worker_sigterm(self, done: Done, victim: int, restart_after: float) -> None:
        slot = self.c.workers[victim]
        slot.held = True
        done.held = self.held(self.worker_pids(slot))
        slot.signal(signal.SIGTERM)
        code = slot.wait(30)
        done.detail["exit_code"] = code
        if code is None:
            slot.kill()
        time.sleep(restart_after)
        self._restart(slot)

    def do_worker_sigstop(self, done: Done, victim: int, seconds: float) -> None:
        slot = self.c.workers[victim]
        slot.held = True
        pids = self.worker_pids(slot)
        done.held = self.held(pids)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        chaos_ledger.record("proc", LEDGER, name=slot.name, pid=slot.pid, what="SIGSTOP")
        time.sleep(seconds)
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        slot.held = False

    def do_worker_kill_starting(self, done: Done, victim: int, after: float) -> None:
        """Replace a worker, and SIGKILL the new one ``after`` seconds into its start."""
        slot = self.c.workers[victim]
        slot.held = True
        done.held = self.held(self.worker_pids(slot))
        slot.signal(signal.SIGTERM)
        if slot.wait(30) is None:
            slot.kill()
        slot.spawn()
        time.sleep(after)
        self.c.orphans += descendants(slot.pid)
        done.held += self.held(self.worker_pids(slot))
        slot.kill()
        self._restart(slot)

    def do_worker_kill_stopping(self, done: Done, victim: int, after: float) -> None:
        """SIGTERM a worker, then SIGKILL it ``after`` seconds into its grace period."""
        slot = self.c.workers[victim]
        slot.held = True
        done.held = self.held(self.worker_pids(slot))
        self.c.orphans += descendants(slot.pid)
        slot.signal(signal.SIGTERM)
        time.sleep(after)
        done.detail["exited_before_kill"] = slot.process is not None and (
            slot.process.poll() is not None
        )
        slot.kill()
        self._restart(slot)

    def do_supervisor_sigkill(self, done: Done, victim: int) -> None:
        """SIGKILL the ``--processes 2`` parent: its children must notice and stop."""
        slot = self.c.workers[2]
        slot.held = True
        children = descendants(slot.pid)
        done.held = self.held(self.worker_pids(slot))
        self.c.orphans += children
        slot.kill()
        deadline = time.monotonic() + self.c.lease + 5 + 5  # notice (1 s), grace (5 s)
        while time.monotonic() < deadline and any(alive(p) for p in children):
            time.sleep(0.1)
        done.detail["children"] = children
        done.detail["children_alive_after_s"] = [p for p in children if alive(p)]
        self._restart(slot)

    def do_web_sigkill(self, done: Done, restart_after: float) -> None:
        self.c.web.held = True
        self.c.web.kill()
        time.sleep(restart_after)
        self._restart(self.c.web)

    def do_web_sigstop(self, done: Done, seconds: float) -> None:
        self.c.web.held = True
        self.c.web.signal(signal.SIGSTOP)
        time.sleep(seconds)
        self.c.web.signal(signal.SIGCONT)
        self.c.web.held = False

    def do_clock_skew(self, done: Done, victim: int, skew: int, seconds: float) -> None:
        """Run a worker for a while with its wall clock ``skew`` seconds off (libfaketime;
        its monotonic clock left alone, as NTP would)."""
        if not self.faketime:
            done.skipped = "libfaketime not installed and could not be installed"
            return
        slot = self.c.workers[victim]
        slot.held = True
        done.held = self.held(self.worker_pids(slot))
        slot.signal(signal.SIGTERM)
        if slot.wait(30) is None:
            slot.kill()
        log_size = slot.log.stat().st_size if slot.log.exists() else 0
        slot.spawn(
            LD_PRELOAD=str(FAKETIME_LIB),
            FAKETIME=f"{skew:+d}",
            FAKETIME_DONT_FAKE_MONOTONIC="1",
            FAKETIME_NO_CACHE="1",
            CHAOS_SKEW=str(skew),
        )
        time.sleep(seconds)
        slot.signal(signal.SIGTERM)
        if slot.wait(30) is None:
            slot.kill()
        with slot.log.open("rb") as f:
            f.seek(log_size)
            said = [ln for ln in f.read().decode(errors="replace").splitlines() if "clock" in ln]
        done.detail["worker_said"] = said[:3]
        self._restart(slot)

    # Redis ---------------------------------------------------------------------------------

    def do_redis_kill9(self, done: Done, down: float) -> None:
        done.held = self.held()
        self.c.redis.kill()
        time.sleep(down)
        self.c.redis.start()

    def do_redis_shutdown_nosave(self, done: Done, down: float) -> None:
        done.held = self.held()
        try:
            self.direct.shutdown(nosave=True)
        except redis.RedisError:
            pass  # the connection closes under the reply: expected
        self.c.redis.wait_exit()
        chaos_ledger.record(
            "proc", LEDGER, name="redis", pid=self.c.redis.process.pid, what="SHUTDOWN NOSAVE"
        )
        time.sleep(down)
        self.c.redis.start()

    def do_redis_debug_sleep(self, done: Done, seconds: float) -> None:
        done.held = self.held()
        self.c.redis.client(timeout=seconds + 10).execute_command("DEBUG", "SLEEP", seconds)

    def do_redis_client_pause(self, done: Done, seconds: float) -> None:
        done.held = self.held()
        self.direct.execute_command("CLIENT", "PAUSE", int(seconds * 1000), "WRITE")
        time.sleep(seconds)

    def do_redis_oom(self, done: Done, seconds: float) -> None:
        """maxmemory below what Redis uses (noeviction): writes that may grow it refused."""
        done.held = self.held()
        used = int(self.direct.info("memory")["used_memory"])
        self.direct.config_set("maxmemory", max(1, used // 2))
        try:
            self.direct.set(f"{self.c.prefix}:chaos-probe", "x")
            done.detail["write_refused"] = False
        except redis.ResponseError as e:
            done.detail["write_refused"] = str(e)[:60]
        time.sleep(seconds)
        self.direct.config_set("maxmemory", 0)

    def do_redis_misconf(self, done: Done, seconds: float) -> None:
        """A failed background save with stop-writes-on-bgsave-error: Redis answers writes
        with MISCONF. Done by killing a slowed BGSAVE child, which Redis takes as a failure."""
        done.held = self.held()
        d = self.direct
        d.config_set("save", "3600 1")  # MISCONF needs save points configured
        d.config_set("rdb-key-save-delay", 1_000_000)  # microseconds per key: a slow child
        for _ in range(50):
            try:
                d.bgsave()
                break
            except redis.ResponseError:  # an AOF rewrite in progress
                time.sleep(0.1)
        child = None
        for _ in range(50):
            kids = descendants(self.c.redis.process.pid)
            if kids:
                child = kids[0]
                break
            time.sleep(0.02)
        if child:
            os.kill(child, signal.SIGKILL)
        for _ in range(50):
            if d.info("persistence")["rdb_last_bgsave_status"] == "err":
                break
            time.sleep(0.05)
        try:
            d.set(f"{self.c.prefix}:chaos-probe", "x")
            done.detail["write_refused"] = False
        except redis.ResponseError as e:
            done.detail["write_refused"] = str(e)[:60]
        time.sleep(seconds)
        d.config_set("rdb-key-save-delay", 0)
        for _ in range(200):  # a good save clears the error
            try:
                d.bgsave()
            except redis.ResponseError:
                pass
            time.sleep(0.1)
            if d.info("persistence")["rdb_last_bgsave_status"] == "ok":
                break
        d.config_set("save", "")

    # Network -------------------------------------------------------------------------------

    def do_net_cut(self, done: Done, seconds: float) -> None:
        done.held = self.held()
        self.c.proxy.cut(seconds)
        time.sleep(seconds)

    def do_net_slow(self, done: Done, delay: float, seconds: float) -> None:
        done.held = self.held()
        self.c.proxy.slow(delay, seconds)
        time.sleep(seconds)

    def do_net_cut_mid_reply(self, done: Done, replies: int) -> None:
        done.held = self.held()
        before = self.c.proxy.cut_replies
        self.c.proxy.cut_mid_reply(replies)
        deadline = time.monotonic() + 10
        while self.c.proxy.cut_replies - before < replies and time.monotonic() < deadline:
            time.sleep(0.05)
        done.detail["replies_cut"] = self.c.proxy.cut_replies - before
        self.c.proxy.cut_mid_reply(0)

    # Bad jobs ------------------------------------------------------------------------------

    def do_poison_job(self, done: Done, victim: int) -> None:
        """A job that SIGKILLs its worker on each of its 2 attempts: dead-lettered after."""
        job_id = self.enqueue("poison")
        done.detail["job"] = job_id
        if job_id:
            done.detail["status"] = self._wait_status(job_id, 40)

    def do_malformed_message(self, done: Done, victim: int) -> None:
        """Raw hashes a foreign producer might write (as tests/engine/test_bad_messages.py)."""
        from worker.protocol.keys import new_job_id

        payloads = [
            b"\x80not json{",
            b'{"task": "os.system", "args": ["touch /tmp/pwned"]}',
            b'{"task": "bench.chaos_app.tasks.io_job", "args": {"key": 1}}',
        ]
        ids = []
        keys = Keys(self.c.prefix)
        for payload in payloads:
            job_id = new_job_id("default")
            self.direct.hset(keys.job(job_id), mapping={"m": payload, "n": 3})
            self.direct.rpush(keys.ready("default"), job_id)
            self.direct.rpush(keys.notify("default"), "1")
            chaos_ledger.record("acked", LEDGER, j=job_id, k="malformed", via="raw")
            ids.append(job_id)
        done.detail["jobs"] = ids
        done.detail["status"] = [self._wait_status(i, 20) for i in ids]

    def _wait_status(self, job_id: str, seconds: float) -> str | None:
        key = Keys(self.c.prefix).job(job_id)
        deadline = time.monotonic() + seconds
        status = None
        while time.monotonic() < deadline:
            try:
                fields = self.direct.hgetall(key)
            except redis.RedisError:
                fields = {}
            status = JobRecord.from_hash(job_id, fields).status.value if fields else None
            if status in ("SUCCESSFUL", "FAILED"):
                return status
            time.sleep(0.2)
        return status


def faketime_available() -> bool:
    """libfaketime, installed with apt-get when missing and we are root (else skipped)."""
    if FAKETIME_LIB.exists():
        return True
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "install", "-y", "-qq", "libfaketime"],
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "libfaketime"],
    ):
        subprocess.run(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
        )
        if FAKETIME_LIB.exists():
            return True
    return False


def dump(planned: list[Planned], path: Path) -> None:
    path.write_text(json.dumps([p.__dict__ for p in planned], indent=1))
