"""
What the HTTP/2 tests need besides the plain-HTTP servers of servers.py:
certificates made at test time (trustme; no key is committed), the servers
that speak HTTP/2 over TLS themselves (hypercorn, daphne), and nginx speaking
HTTP/2 to clients in front of a plain-HTTP server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trustme

from tests.integration.servers import (
    ASGI_APP,
    BIN,
    GRACEFUL_TIMEOUT,
    START_TIMEOUT,
    Server,
    ServerSpec,
    free_port,
)
from tests.integration.test_nginx import nginx_binary, nginx_config


@dataclass(frozen=True)
class Certificates:
    """A test CA, and a certificate it issued for 127.0.0.1 and localhost."""

    ca: Path
    cert: Path
    key: Path

    def client_context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        """A client's TLS context that trusts the test CA."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if alpn is not None:
            context.set_alpn_protocols(alpn)
        return context


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    certificates = Certificates(
        ca=directory / "ca.pem", cert=directory / "cert.pem", key=directory / "key.pem"
    )
    ca.cert_pem.write_to_path(str(certificates.ca))
    issued.private_key_pem.write_to_path(str(certificates.key))
    with certificates.cert.open("wb") as chain:
        for blob in issued.cert_chain_pems:
            chain.write(blob.bytes())
    return certificates


def tls_specs(certificates: Certificates) -> dict[str, ServerSpec]:
    """The servers that speak HTTP/2 (and HTTP/1.1) over TLS, by ALPN."""
    cert, key = certificates.cert, certificates.key
    return {
        spec.name: spec
        for spec in [
            ServerSpec(
                "hypercorn-h2",
                "asgi",
                lambda port, streams: [
                    str(BIN / "hypercorn"),
                    f"--bind=127.0.0.1:{port}",
                    f"--certfile={cert}",
                    f"--keyfile={key}",
                    f"--graceful-timeout={GRACEFUL_TIMEOUT}",
                    ASGI_APP,
                ],
            ),
            ServerSpec(
                "daphne-h2",
                "asgi",
                # Twisted's endpoint syntax; HTTP/2 needs twisted[tls,http2].
                lambda port, streams: [
                    str(BIN / "daphne"),
                    "-e",
                    f"ssl:{port}:privateKey={key}:certKey={cert}:interface=127.0.0.1",
                    f"--application-close-timeout={GRACEFUL_TIMEOUT}",
                    "--verbosity=1",
                    ASGI_APP,
                ],
            ),
        ]
    }


def wait_until_answers_tls(
    url: str,
    process: subprocess.Popen[bytes],
    certificates: Certificates,
    timeout: float,
    log: Callable[[], str],
) -> None:
    """tests.polling.wait_until_answers, over HTTPS with the test CA."""
    deadline = time.monotonic() + timeout
    context = certificates.client_context()
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the server exited at start:\n{log()}")
        try:
            if httpx.get(url, timeout=1.0, verify=context).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer in {timeout} s:\n{log()}")
        time.sleep(0.05)


@dataclass
class TlsServer(Server):
    """A server of servers.py, serving HTTPS with the test certificate."""

    certificates: Certificates | None = field(default=None)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        assert self.certificates is not None
        wait_until_answers_tls(
            self.url("/plain/"),
            self.process,
            self.certificates,
            START_TIMEOUT,
            self.log_text,
        )


#: nginx speaking HTTP/2 (and HTTP/1.1) over TLS to clients, and HTTP/1.1 to
#: the server behind it, with the proxy settings of docs/deployment.md.
H2_LISTEN = """\
listen 127.0.0.1:{port} ssl http2;
ssl_certificate {cert};
ssl_certificate_key {key};
"""


@contextlib.contextmanager
def nginx_h2(
    upstream_port: int, certificates: Certificates, tmp: Path
) -> Iterator[str]:
    """Run nginx with HTTP/2 in front of ``upstream_port``; yield its base URL."""
    port = free_port()
    listen = H2_LISTEN.format(port=port, cert=certificates.cert, key=certificates.key)
    config = tmp / "nginx.conf"
    config.write_text(nginx_config(tmp, upstream_port, listen))
    with (tmp / "stderr.log").open("wb") as log:
        process = subprocess.Popen(
            [nginx_binary(), "-c", str(config), "-p", str(tmp)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"https://127.0.0.1:{port}"
        wait_until_answers_tls(
            base + "/plain/", process, certificates, 15, lambda: _logs(tmp)
        )
        yield base
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def _logs(tmp: Path) -> str:
    return "\n".join(
        path.read_text(errors="replace") for path in tmp.glob("*.log") if path.is_file()
    )
