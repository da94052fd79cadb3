"""Running the service: where it listens, who may talk to it, and a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from streamflow_data.configfile import TOKEN_ENVIRONMENT, Configuration, read_token
from streamflow_data.errors import ConfigurationError
from streamflow_data.manager import DefaultDataManager
from streamflow_data.service.app import Service

__all__ = ["TOKEN_ENVIRONMENT", "Endpoint", "read_token", "running", "serve"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the service listens: a Unix socket (``unix:PATH``) or ``HOST:PORT``."""

    unix: str | None = None
    host: str = "127.0.0.1"
    port: int = 0

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """Read ``unix:PATH`` or ``HOST:PORT`` (port 0: any free port)."""
        if text.startswith("unix:"):
            path = text.removeprefix("unix:").removeprefix("//")
            if not path:
                raise ConfigurationError("--listen unix:PATH needs a path")
            return cls(unix=os.path.abspath(path))
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            raise ConfigurationError(f"--listen: expected unix:PATH or HOST:PORT, got {text!r}")
        return cls(host=host.strip("[]"), port=int(port))

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach it."""
        if self.unix is not None or self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def bind(self) -> tuple[socket.socket, str]:
        """A listening socket, and the URL clients use (blocking: run it in a thread). A
        Unix socket is made mode 0600 before it listens: no other user can connect."""
        if self.unix is None:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            host, port = sock.getsockname()[:2]
            url = (
                f"http://[{host}]:{port}" if family == socket.AF_INET6 else f"http://{host}:{port}"
            )
        else:
            _remove_stale(self.unix)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(self.unix)
            os.chmod(self.unix, 0o600)
            url = f"unix://{self.unix}"
        sock.listen(1024)
        sock.setblocking(False)
        return sock, url


def _remove_stale(path: str) -> None:
    """Remove a socket file left by a service that is gone; refuse to replace anything
    else, or a socket a service still listens on."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigurationError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: a leftover
        return
    finally:
        probe.close()
    raise ConfigurationError(f"a service already listens on {path}")


@contextlib.asynccontextmanager
async def running(
    manager: DefaultDataManager,
    endpoint: Endpoint,
    token: str | None = None,
    queue: int | None = None,
) -> AsyncIterator[tuple[Service, str]]:
    """Serve ``manager`` (open) at ``endpoint`` for the duration of the block; yields the
    service and its URL. With ``queue``, in queue mode, running that many queued transfers
    at once. Transfers still running at the end are cancelled, resumably (set the
    manager's shutdown event first to have them suspended instead)."""
    if not endpoint.loopback and token is None:
        raise ConfigurationError(
            f"listening on {endpoint.host} reaches other machines: give a token "
            f"(--token-file, or ${TOKEN_ENVIRONMENT})"
        )
    sock, url = await asyncio.to_thread(endpoint.bind)
    async with asyncio.TaskGroup() as tasks:
        service = Service(manager, tasks, token=token, queue=queue)
        runner = web.AppRunner(
            service.application(),
            handle_signals=False,
            handler_cancellation=True,  # a client gone: its request handler stops
            access_log=None,
        )
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            yield service, url
        finally:
            await runner.cleanup()
            service.board.stop_all()
            if endpoint.unix is not None:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(os.unlink, endpoint.unix)


async def serve(
    configuration: Configuration,
    endpoint: Endpoint,
    token: str | None,
    ready: Callable[[str], None],
) -> None:
    """Run the service until SIGTERM or SIGINT: then running transfers are suspended
    (resumable, journaled), the catalog is flushed, and it returns. ``ready`` is told the
    URL once the service listens."""
    loop = asyncio.get_running_loop()
    shutdown = asyncio.Event()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        manager = configuration.create_manager(shutdown=shutdown)
        settings = configuration.service
        queue = settings.queue_concurrency if settings.queue else None
        async with manager, running(manager, endpoint, token, queue) as (service, url):
            logger.info("serving on %s", url)
            ready(url)
            await stop.wait()
            running_now = service.board.counts()["running"]
            logger.info("stopping: suspending %d running transfer(s)", running_now)
            shutdown.set()
            pending = [t.task for t in service.board if t.task is not None]
            if pending:
                await asyncio.wait(pending)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
