"""A throwaway PostgreSQL server on loopback, for tests and recipes that load into PostgreSQL.

Why our own script: nothing may be assumed preinstalled on a new machine or in CI, and a
test needs a real server, not a mock. This finds PostgreSQL's server programs (installing
Debian's ``postgresql`` package when they are missing and we are root), creates a cluster in
a folder of ours, and starts it on 127.0.0.1 only, with password authentication.

    python scripts/postgres.py start --dir .pg --port 55432   # prints the SQLAlchemy URL
    python scripts/postgres.py stop --dir .pg

From Python (pytest fixtures): ``server = PostgresServer.temporary().start()`` ...
``server.remove()``.

PostgreSQL refuses to run as root; as root, the cluster is owned by and run as the
``postgres`` system user (created by the Debian package).
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

USER = "tap"
PASSWORD = "tap-local-only"  # loopback-only throwaway server; not a secret
DATABASE = "warehouse"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server programs cannot be found or installed here."""


def _bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        if out and (Path(out) / "pg_ctl").exists():
            return Path(out)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


def server_bindir(install: bool = True) -> Path:
    """Where ``initdb``/``pg_ctl`` live, installing Debian's package if allowed and needed."""
    bindir = _bindir()
    if bindir is None and install and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env)
        bindir = _bindir()
    if bindir is None:
        raise PostgresUnavailable(
            "PostgreSQL's server programs (initdb, pg_ctl) were not found: "
            "install PostgreSQL (Debian: apt-get install postgresql)"
        )
    return bindir


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """One cluster in ``directory``, listening on 127.0.0.1:``port``."""

    directory: Path
    port: int

    @classmethod
    def temporary(cls) -> PostgresServer:
        """A server in a new folder under the system temp dir, on a free port (not started).

        Not under pytest's ``tmp_path``: as root, the cluster runs as ``postgres``, which must
        be able to reach its folder, and pytest's folders are private to root."""
        import tempfile

        directory = Path(tempfile.mkdtemp(prefix="tap-commerce-exports-pg-"))
        directory.chmod(0o755)
        return cls(directory, free_port())

    def remove(self) -> None:
        """Stop the server and delete its folder."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of the warehouse database."""
        return f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def libpq_url(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["runuser", "-u", "postgres", "--", *argv]

    def start(self) -> PostgresServer:
        bindir = server_bindir()
        data = self.directory / "data"
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        if not (data / "PG_VERSION").exists():
            pwfile = self.directory / "pwfile"
            pwfile.write_text(PASSWORD + "\n")
            if os.geteuid() == 0:
                os.chown(pwfile, owner.pw_uid, owner.pw_gid)
            subprocess.run(
                self._as_owner(
                    [
                        str(bindir / "initdb"),
                        "-D",
                        str(data),
                        "-U",
                        USER,
                        "--pwfile",
                        str(pwfile),
                        "--auth=scram-sha-256",
                        "--encoding=UTF8",
                        "--locale=C",
                    ]
                ),
                check=True,
                capture_output=True,
            )
            pwfile.unlink()
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.directory} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        subprocess.run(
            self._as_owner(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(self.directory / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        self._wait_ready()
        self._ensure_database(bindir)
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise PostgresUnavailable(
            f"PostgreSQL did not start on port {self.port}: see {self.directory}/server.log"
        )

    def _ensure_database(self, bindir: Path) -> None:
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        psql = shutil.which("psql") or str(bindir / "psql")
        base = [psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", "postgres", "-tAc"]
        exists = subprocess.run(
            [*base, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout.strip()
        if exists != "1":
            subprocess.run([*base, f"CREATE DATABASE {DATABASE}"], capture_output=True, env=env, check=True)

    def stop(self) -> None:
        data = self.directory / "data"
        if not (data / "postmaster.pid").exists():
            return
        bindir = server_bindir(install=False)
        subprocess.run(
            self._as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )

    def query(self, sql: str) -> list[tuple[str, ...]]:
        """Rows of ``sql`` as tuples of text (via psql: no driver needed in the test venv)."""
        bindir = server_bindir(install=False)
        psql = shutil.which("psql") or str(bindir / "psql")
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        out = subprocess.run(
            [psql, self.libpq_url, "-tA", "-F", "\t", "-c", sql],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        return [tuple(line.split("\t")) for line in out.splitlines() if line]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "url"])
    parser.add_argument("--dir", type=Path, default=Path(".pg"))
    parser.add_argument("--port", type=int, default=55432)
    args = parser.parse_args(argv)
    server = PostgresServer(args.dir.resolve(), args.port)
    try:
        if args.action == "start":
            server.start()
        elif args.action == "stop":
            server.stop()
            return 0
        print(server.url)
    except (PostgresUnavailable, subprocess.CalledProcessError) as exc:
        detail = exc.stderr.decode(errors="replace").strip() if getattr(exc, "stderr", None) else str(exc)
        sys.stderr.write(f"postgres: {detail.splitlines()[-1] if detail else exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
