"""Starting and stopping a real ``floodgate serve`` for one test."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

import httpx

HERE = Path(__file__).resolve().parent
DEFAULT_BIN = (HERE / ".." / ".." / ".." / "target" / "debug" / "floodgate").resolve()

STARTUP_DEADLINE = 90.0
"""Seconds a server gets to answer ``/health/ready`` (a loaded 2-core machine is slow)."""


def binary() -> Path:
    """The server binary: ``$FLOODGATE_BIN``, else the workspace's debug build. It may be
    rebuilt under the tests, so a missing file is waited for a while."""
    path = Path(os.environ.get("FLOODGATE_BIN") or DEFAULT_BIN)
    deadline = time.monotonic() + 120
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no floodgate binary at {path} (set FLOODGATE_BIN)")
        time.sleep(1)
    return path


def free_port() -> int:
    """A port free right now on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment without ``FLOODGATE_*`` variables but ``FLOODGATE_LOG=warn``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOODGATE_")}
    env["FLOODGATE_LOG"] = "warn"
    env.update(extra or {})
    return env


class Server:
    """A running ``floodgate serve`` on a free port, with its own database, and with
    ``config`` (TOML text: ``[limiters.NAME]`` and the like) as its ``--config`` file."""

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        env: Optional[Dict[str, str]] = None,
        config: Optional[str] = None,
    ):
        self.database_url = database_url
        self.workdir = workdir
        self.extra_env = env or {}
        self.config = config
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.url = ""
        self.log_path = workdir / "server.log"

    def start(self) -> "Server":
        """Starts the server and waits until it is ready (another port if one was taken)."""
        exe = binary()
        last = ""
        for _ in range(5):
            port = free_port()
            cmd: List[str] = [
                str(exe), "serve", "--listen", f"127.0.0.1:{port}",
                "--database-url", self.database_url,
            ]
            if self.config is not None:
                config_path = self.workdir / "floodgate.toml"
                config_path.write_text(self.config)
                cmd += ["--config", str(config_path)]
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=server_env(self.extra_env)
            )
            log.close()
            self.url = f"http://127.0.0.1:{port}"
            if self._wait_ready():
                return self
            last = self.log()
            self.stop()
        raise RuntimeError(f"floodgate serve did not become ready:\n{last}")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=5).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        return False

    def log(self) -> str:
        """What the server printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stops the server (SIGTERM, then SIGKILL after 20 s)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(20)
