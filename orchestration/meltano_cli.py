"""`meltano` as a subprocess: run a group, read and write state by id.

Why a subprocess and not dagster-meltano: see orchestration/README.md. Why not Dagster
Pipes: Meltano is not ours to instrument; its exit code and its log lines are all a run
reports, and both reach Dagster here (the lines as they come, the code as success/failure).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestration.run_isolation import PRIVATE_UMASK, allowed_env, private_run_dir


def _names_database(meltano_yml: Path) -> bool:
    """Whether meltano.yml sets `database_uri` (a top-level key)."""
    try:
        return re.search(r"^database_uri:", meltano_yml.read_text(), re.MULTILINE) is not None
    except OSError:
        return False


def state_id(environment: str, extractor: str, loader: str, suffix: str) -> str:
    """Meltano's state id of `meltano run <extractor> <loader> --state-id-suffix <suffix>`."""
    return f"{environment}:{extractor}-to-{loader}:{suffix}"


class MeltanoError(RuntimeError):
    """A meltano command failed; the message is ours and names the command, never its env."""


@dataclass(frozen=True)
class RunOutcome:
    returncode: int
    seconds: float
    started: float  # time.time() at start, to show (and test) overlap between runs
    ended: float
    last_lines: tuple[str, ...]


@dataclass(frozen=True)
class Meltano:
    """One Meltano project: where it is, which `meltano` runs it, in which environment."""

    project_dir: Path
    meltano_bin: str = "meltano"
    environment: str = "dev"
    env: Mapping[str, str] | None = None  # the base environment (default: this process's)
    #: what a meltano process gets beyond the allow-list (names, or `PREFIX*`): see run_isolation
    pass_env: tuple[str, ...] = ()

    def base_env(self) -> dict[str, str]:
        return dict(os.environ if self.env is None else self.env)

    def sys_dir(self) -> Path:
        """Meltano's system directory for this project (`MELTANO_SYS_DIR_ROOT`, else `.meltano`)."""
        return Path(self.base_env().get("MELTANO_SYS_DIR_ROOT") or self.project_dir / ".meltano")

    @contextlib.contextmanager
    def isolated(self, name: str) -> Iterator[dict[str, str]]:
        """A private system directory for one run of group `name` (:func:`private_run_dir`),
        keeping the system database the project names; removed when the `with` ends.

        Why a directory per run: Meltano writes a plugin's discovered catalog and its config
        files under `<sys dir>/run/<plugin>/`, one path per plugin, so two runs of one
        extractor from one project on one machine overwrite each other's catalog (seen:
        "Invalid catalog"). The run's folder links the shared plugin venvs.

        Only when neither `MELTANO_DATABASE_URI` nor meltano.yml's `database_uri` names one
        is the default (`<sys dir>/meltano.db`) named explicitly, since the run's own sys
        dir would otherwise move it."""
        sys_dir = self.sys_dir().resolve()
        with private_run_dir(sys_dir, name) as env:
            if not (
                self.base_env().get("MELTANO_DATABASE_URI")
                or _names_database(self.project_dir / "meltano.yml")
            ):
                env["MELTANO_DATABASE_URI"] = f"sqlite:///{sys_dir / 'meltano.db'}"
            yield env

    def _env(self, extra: Mapping[str, str] | None = None, plugins: Sequence[str] = ()) -> dict[str, str]:
        """The allow-listed part of the base environment (:func:`allowed_env`), then `extra`."""
        base = allowed_env(self.base_env(), plugins, self.pass_env)
        base.setdefault("MELTANO_SEND_ANONYMOUS_USAGE_STATS", "false")
        base.update(extra or {})
        return base

    def _cmd(self, *args: str) -> list[str]:
        return [self.meltano_bin, f"--environment={self.environment}", *args]

    def run(
        self,
        args: Sequence[str],
        extra_env: Mapping[str, str] | None = None,
        on_line: Callable[[str], None] | None = None,
        keep_lines: int = 60,
        plugins: Sequence[str] = (),
    ) -> RunOutcome:
        """Run `meltano <args>`, handing each output line to `on_line` as it comes.

        `plugins`: the plugins the command runs, whose settings' variables pass."""
        started, t0 = time.time(), time.monotonic()
        tail: list[str] = []
        with subprocess.Popen(
            self._cmd(*args),
            cwd=self.project_dir,
            env=self._env(extra_env, plugins),
            umask=PRIVATE_UMASK,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                tail = [*tail[-(keep_lines - 1) :], line]
                if on_line:
                    on_line(line)
            returncode = proc.wait()
        return RunOutcome(returncode, time.monotonic() - t0, started, time.time(), tuple(tail))

    def run_group(
        self,
        name: str,
        args: Sequence[str],
        extra_env: Mapping[str, str] | None = None,
        on_line: Callable[[str], None] | None = None,
        plugins: Sequence[str] = (),
    ) -> RunOutcome:
        """:meth:`run` in group `name`'s own private system directory, removed afterwards."""
        with self.isolated(name) as own:
            return self.run(args, {**own, **(extra_env or {})}, on_line, plugins=plugins)

    def _call(self, *args: str, stdin: str | None = None) -> str:
        proc = subprocess.run(
            self._cmd("--log-level=error", *args),
            cwd=self.project_dir,
            env=self._env(),
            umask=PRIVATE_UMASK,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            raise MeltanoError(
                f"meltano {args[0]} {args[1] if len(args) > 1 else ''} failed: {lines[-1] if lines else 'no output'}"
            )
        return proc.stdout

    def get_state(self, state_id: str) -> dict[str, Any]:
        """The Singer state saved under `state_id` ({} if none): `meltano state get`."""
        text = self._call("state", "get", state_id).strip()
        saved = json.loads(text) if text else {}
        return dict(saved.get("singer_state") or {})

    def set_state(self, state_id: str, singer_state: Mapping[str, Any]) -> None:
        """Replace the state of `state_id`: `meltano state set --force`."""
        self._call("state", "set", "--force", state_id, json.dumps({"singer_state": singer_state}))

    def upgrade_database(self) -> None:
        """Create or migrate Meltano's system database (state backend): once, before runs start."""
        self._call("upgrade", "database")
