"""What one `meltano` process may see of ours, and the private folder a group's run works in.

Why: the Dagster process holds every group's tokens (`<setting>_env` variables), the
database passwords of Dagster and of the warehouse, and the deployment's cloud keys. A
group's run needs none of another group's, so its environment is built from an
allow-list rather than copied. And Meltano writes each plugin's resolved config (tokens
included) under `<sys dir>/run/<plugin>/`: with the process's umask (often 022) that is a
world-readable file under world-readable folders, kept when a run is killed. A run
therefore works in a folder of its own, created `0700`, its processes under umask 077,
removed when the run ends; a folder left by a killed run is removed by the next run
(its lock, held by a live run for its whole life, is what tells the two apart).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

#: The umask of every meltano process we start: whatever Meltano writes is ours alone.
PRIVATE_UMASK = 0o077

#: Variables every meltano process gets: the system's basics, TLS trust and proxies.
BASIC_NAMES = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    }
)  # fmt: skip
#: Prefixes every meltano process gets: the locale, and Meltano's own settings (its
#: system database or state backend is what keeps state: needed by every command).
BASIC_PREFIXES = ("LC_", "MELTANO_")

#: Kinds of plugin folders a run's own system directory links to (nothing installs again).
PLUGIN_KINDS = ("extractors", "loaders", "mappers", "utilities", "transformers", "orchestrators", "files")


def env_prefix(plugin: str) -> str:
    """Meltano's `<PLUGIN_NAME>_` environment prefix of a plugin's settings."""
    return "".join(c if c.isalnum() else "_" for c in plugin).upper() + "_"


def plugin_prefixes(plugins: Iterable[str]) -> tuple[str, ...]:
    """The prefixes whose variables set these plugins' settings.

    A plugin named `<parent>--<variant>` (Meltano's convention for `inherit_from`) also
    reads its parent's `<PARENT>_<SETTING>`, so the parent's prefix counts too."""
    out: list[str] = []
    for plugin in plugins:
        out.append(env_prefix(plugin))
        if "--" in plugin:
            out.append(env_prefix(plugin.split("--", 1)[0]))
    return tuple(out)


def _is_setting_of(name: str, prefix: str) -> bool:
    """`name` is `<prefix><SETTING>`; a setting's name never starts with `_`, so
    `TAP_X__OTHER_TOKEN` (a sibling plugin `tap-x--other`) is not `tap-x`'s."""
    return name.startswith(prefix) and len(name) > len(prefix) and name[len(prefix)] != "_"


def allowed_env(
    environ: Mapping[str, str], plugins: Iterable[str] = (), pass_env: Iterable[str] = ()
) -> dict[str, str]:
    """The part of `environ` a meltano process of these plugins may see.

    `pass_env`: what the deployment adds, each a name or a `PREFIX*` (e.g. `AWS_*` for an
    S3 state backend); nothing else of the calling process passes."""
    prefixes = plugin_prefixes(plugins)
    extra = tuple(pass_env)
    names = {p for p in extra if not p.endswith("*")}
    extra_prefixes = tuple(p[:-1] for p in extra if p.endswith("*") and len(p) > 1)
    return {
        k: v
        for k, v in environ.items()
        if k in BASIC_NAMES
        or k in names
        or k.startswith(BASIC_PREFIXES + extra_prefixes)
        or any(_is_setting_of(k, p) for p in prefixes)
    }


def _private_folder(path: Path) -> None:
    """`path` exists as a real folder of ours, mode 0700 (created so, or made so)."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise OSError(f"{path} must be a folder of this user's, not a link or another user's: remove it")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)


def _sweep_abandoned(runs: Path) -> None:
    """Remove the folders of runs that ended without cleaning up (killed): their lock is free."""
    for folder in runs.iterdir():
        lock = folder / ".lock"
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # no lock yet (a run being set up) or not a run's folder: left alone
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # a live run holds it
        else:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(fd)


@contextlib.contextmanager
def private_run_dir(base: Path, name: str) -> Iterator[dict[str, str]]:
    """A Meltano system directory of one run's own, `<base>/runs/<name>-<random>`, for the
    length of the `with`: `0700` under a `0700` `runs/`, linking the shared plugin venvs,
    locked while the run lives, removed after it. Yields its `MELTANO_SYS_DIR_ROOT`."""
    base = base.resolve()
    base.mkdir(parents=True, exist_ok=True)
    runs = base / "runs"
    _private_folder(runs)
    _sweep_abandoned(runs)
    own = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=runs))  # 0700, a fresh name
    # locked under a temporary name, then renamed: a sweeper never sees an unlocked `.lock`
    fd = os.open(own / ".lock-new", os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(own / ".lock-new", own / ".lock")
        for kind in PLUGIN_KINDS:
            shared = base / kind
            if shared.exists():
                (own / kind).symlink_to(shared.resolve(), target_is_directory=True)
        yield {"MELTANO_SYS_DIR_ROOT": str(own)}
    finally:
        shutil.rmtree(own, ignore_errors=True)
        os.close(fd)
