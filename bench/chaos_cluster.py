"""The processes of the chaos soak: its own redis-server (AOF), the proxy in front of it,
three ``runworker`` processes (the third a ``--processes 2`` supervisor) and the web process.

Every process runs in a session of its own, so a signal meant for one reaches only it, and
every start and exit is written to the soak's ledger (file ``soak.jsonl``): the analysis
explains a job run twice by the faults and process deaths around it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench import chaos_ledger
from bench.chaos_proxy import Proxy
from worker.protocol.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
LEDGER = "soak"  # the soak process's own ledger file
FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def descendants(pid: int) -> list[int]:
    """``pid``'s children, grandchildren, ... (from /proc), without ``pid``."""
    found: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        found += [child, *descendants(child)]
    return found


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        total += pages * os.sysconf("SC_PAGE_SIZE")
    return round(total / 2**20, 1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not alive.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


class RedisProcess:
    """redis-server (Debian's, as deployed) with AOF, on a fixed port across restarts."""

    def __init__(self, directory: Path, fsync: str) -> None:
        self.directory = directory
        self.port = free_port()
        self.fsync = fsync
        self.process: subprocess.Popen[bytes] | None = None
        self.binary = (
            "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else ("redis-server")
        )

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                self.fsync,
                "--enable-debug-command",
                "yes",
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        chaos_ledger.record("proc", LEDGER, name="redis", pid=self.process.pid, what="start")
        deadline = time.monotonic() + 60  # replaying a long AOF takes a while
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.directory}/redis.log")
            try:
                if self.client(timeout=1).ping():
                    return
            except redis.RedisError:
                pass  # not listening yet, or LOADING the AOF
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer within 60 s")

    def client(self, timeout: float = 5) -> redis.Redis:
        """A direct connection (around the proxy): the soak's own view, faults included."""
        return redis.Redis(port=self.port, socket_timeout=timeout, socket_connect_timeout=2)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            chaos_ledger.record("proc", LEDGER, name="redis", pid=self.process.pid, what="kill")

    def wait_exit(self, timeout: float = 10) -> None:
        if self.process:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.wait_exit()


@dataclass
class Slot:
    """One of the soak's long-lived processes, restarted whenever it exits."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    held: bool = False  # a fault owns it for now: the monitor does not restart it
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def spawn(self, **extra_env: str) -> subprocess.Popen[bytes]:
        self.extra_env = dict(extra_env)
        self.process = subprocess.Popen(
            [sys.executable, *self.args],
            cwd=ROOT,
            env={**self.env, **extra_env},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        chaos_ledger.record(
            "proc",
            LEDGER,
            name=self.name,
            pid=self.process.pid,
            what="start",
            env=sorted(extra_env),
        )
        return self.process

    def signal(self, signum: int) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signum)
            chaos_ledger.record(
                "proc", LEDGER, name=self.name, pid=self.pid, what=signal.Signals(signum).name
            )

    def wait(self, timeout: float) -> int | None:
        if self.process is None:
            return None
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        chaos_ledger.record("proc", LEDGER, name=self.name, pid=self.pid, what="exit", code=code)
        return code

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait(30)

    def tree(self) -> list[int]:
        if self.process is None or self.process.poll() is not None:
            return []
        return [self.pid, *descendants(self.pid)]


class Cluster:
    def __init__(self, out: Path, fsync: str, lease: float, prefix: str) -> None:
        self.out = out
        self.lease = lease
        self.prefix = prefix
        self.ledger_dir = out / "ledger"
        self.logs = out / "logs"
        for d in (self.ledger_dir, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        os.environ[chaos_ledger.ENV] = str(self.ledger_dir)
        self.redis = RedisProcess(out / "redis", fsync)
        self.proxy_port = free_port()
        self.web_port = free_port()
        self.proxy = Proxy(self.proxy_port, self.redis.port)
        web = f"http://127.0.0.1:{self.web_port}"
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "bench.chaos_settings",
            "REDIS_URL": f"redis://127.0.0.1:{self.proxy_port}/0",
            "TASKS_PREFIX": prefix,
            "TASKS_LEASE": str(lease),
            "DATABASE_URL": f"sqlite:///{out / 'db.sqlite3'}",
            "DJANGO_DEBUG": "1",  # serves the fake order service and webhook under /fake/
            "FAKE_SERVICES": "1",
            "ORDER_SERVICE_URL": f"{web}/fake/orders",
            "REPORT_WEBHOOK_URL": f"{web}/fake/webhook",
            chaos_ledger.ENV: str(self.ledger_dir),
        }
        self.env.pop("CHAOS_SKEW", None)
        worker = ["manage.py", "runworker", "--concurrency", "20", "--grace", "5"]
        self.workers = [
            Slot("worker-0", worker, self.env, self.logs / "worker-0.log"),
            Slot("worker-1", worker, self.env, self.logs / "worker-1.log"),
            Slot(
                "worker-2",
                [
                    "manage.py",
                    "runworker",
                    "--concurrency",
                    "10",
                    "--grace",
                    "5",
                    "--processes",
                    "2",
                ],
                self.env,
                self.logs / "worker-2.log",
            ),
        ]
        self.web = Slot(
            "web",
            [
                "-m",
                "uvicorn",
                "project.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.web_port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--lifespan",
                "off",
            ],
            self.env,
            self.logs / "web.log",
        )
        self.web_url = web
        self.orphans: list[int] = []  # children of killed supervisors, to be checked and reaped

    @property
    def slots(self) -> list[Slot]:
        return [*self.workers, self.web]

    def start(self) -> None:
        self.redis.start()
        self.proxy.start()
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"],
            cwd=ROOT,
            env=self.env,
            check=True,
            stdout=(self.logs / "migrate.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        for slot in self.slots:
            slot.spawn()

    def restart_dead(self) -> list[str]:
        """Restart every process that exited on its own (a poison job, a crash); the names."""
        restarted = []
        for slot in self.slots:
            if slot.held or slot.process is None or slot.process.poll() is None:
                continue
            chaos_ledger.record(
                "proc",
                LEDGER,
                name=slot.name,
                pid=slot.pid,
                what="exit",
                code=slot.process.returncode,
                planned=False,
            )
            slot.spawn(**slot.extra_env)
            restarted.append(slot.name)
        return restarted

    def stop(self) -> None:
        """SIGTERM everything (workers get their grace), then SIGKILL what is left."""
        for slot in self.slots:
            slot.held = True
            slot.signal(signal.SIGTERM)
        for slot in self.slots:
            if slot.wait(30) is None:
                slot.kill()
        self.reap_orphans()

    def reap_orphans(self) -> None:
        for pid in self.orphans:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

    def shutdown(self) -> None:
        try:
            self.stop()
            self.proxy.stop()
        finally:
            self.redis.stop()
