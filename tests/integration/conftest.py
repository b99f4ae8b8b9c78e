"""
Fixtures that serve the test project with real servers, and a record of the
figures the tests measure, printed at the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.integration.clients import Reports
from tests.integration.servers import Server, ServerSpec, spec_named

figures_key = pytest.StashKey[list[tuple[str, str]]]()


@dataclass
class Served:
    """A running server, with its sources' reports and an HTTP client."""

    server: Server
    reports: Reports
    client: httpx.Client

    @property
    def spec(self) -> ServerSpec:
        return self.server.spec

    def url(self, path: str) -> str:
        return self.server.url(path)


class ServerFactory:
    """Starts servers for one test, and stops them all at its end."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._servers: list[Server] = []

    def start(
        self, name: str, env: dict[str, str] | None = None, streams: int = 16
    ) -> Server:
        base = self._tmp.mktemp(name)
        server = Server(
            spec_named(name),
            state=base / "state",
            log=base / "server.log",
            env=env or {},
            streams=streams,
        )
        self._servers.append(server)
        server.start()
        return server

    def stop_all(self) -> None:
        for server in self._servers:
            server.stop()


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Start a server of one's own (for tests that stop it, or set it up apart)."""
    factory = ServerFactory(tmp_path_factory)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="module")
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A server shared by the tests of a module; parametrize with its name."""
    factory = ServerFactory(tmp_path_factory)
    try:
        server = factory.start(request.param)
        with httpx.Client() as client:
            yield Served(server, Reports(server.state), client)
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest) -> list[tuple[str, str]]:
    """Record a measured figure: ``figures.append((what, value))``."""
    return request.config.stash.setdefault(figures_key, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    figures = terminalreporter.config.stash.get(figures_key, [])
    if figures:
        terminalreporter.section("integration figures")
        width = max(len(what) for what, _ in figures)
        for what, value in sorted(figures):
            terminalreporter.write_line(f"{what:<{width}}  {value}")
