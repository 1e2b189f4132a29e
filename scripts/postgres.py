"""A throwaway PostgreSQL server on loopback, for tests and recipes that load into PostgreSQL.

Why our own script: nothing may be assumed preinstalled on a new machine or in CI, and a
test needs a real server, not a mock. This finds PostgreSQL's server programs (installing
Debian's ``postgresql`` package when they are missing, only when asked: ``--install-packages``
or ``POSTGRES_INSTALL_PACKAGES=1``, and only as root), creates a cluster in a folder of ours,
and starts it on 127.0.0.1 only (no Unix socket), with password authentication.

    python scripts/postgres.py start --dir .pg --port 55432   # prints the SQLAlchemy URL
    python scripts/postgres.py stop --dir .pg

Every program runs from an argv list, never through a shell: ``pg_ctl start`` builds a
``/bin/sh -c`` line from its ``-D``, ``-l`` and ``-o`` (a folder named ``d$(id>x)x`` ran
``id``), so ``postgres`` is started directly and ``pg_ctl`` only stops it (no shell there).

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
from dataclasses import dataclass, field
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


#: Set to 1 to let a root process install Debian's ``postgresql`` when it is missing.
INSTALL_ENV = "POSTGRES_INSTALL_PACKAGES"


def server_bindir(install: bool = False) -> Path:
    """Where ``initdb``/``pg_ctl`` live; Debian's package is installed only if asked (`install`)."""
    bindir = _bindir()
    if bindir is None and install and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env)
        bindir = _bindir()
    if bindir is None:
        raise PostgresUnavailable(
            "PostgreSQL's server programs (initdb, pg_ctl) were not found: install PostgreSQL "
            f"(Debian: apt-get install postgresql), or as root pass --install-packages ({INSTALL_ENV}=1)"
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
    #: may install Debian's ``postgresql`` (as root) when the server programs are missing
    install_packages: bool = field(default_factory=lambda: os.environ.get(INSTALL_ENV) == "1")
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

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
        bindir = server_bindir(self.install_packages)
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
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",  # TCP on loopback only: no path in any setting
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        argv = [str(bindir / "postgres"), "-D", str(data)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        with open(self.directory / "server.log", "ab") as log:
            self._process = subprocess.Popen(
                self._as_owner(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives this process (`start` from the command line)
            )
        self._wait_ready(bindir)
        self._ensure_database(bindir)
        return self

    def _wait_ready(self, bindir: Path, timeout: float = 60.0) -> None:
        """Until the server accepts connections (`pg_isready`); the deadline only bounds a hang."""
        deadline = time.monotonic() + timeout
        ready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        while time.monotonic() < deadline:
            if subprocess.run(ready, capture_output=True).returncode == 0:
                return
            if self._process is not None and self._process.poll() is not None:
                break
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
        if self._process is not None:
            self._process.wait(timeout=60)  # bounds a hang only: pg_ctl -w waited for the stop
            self._process = None

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
    parser.add_argument(
        "--install-packages",
        action="store_true",
        help="as root, install Debian's postgresql package if its server programs are missing",
    )
    args = parser.parse_args(argv)
    server = PostgresServer(args.dir.resolve(), args.port)
    server.install_packages = server.install_packages or args.install_packages
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
