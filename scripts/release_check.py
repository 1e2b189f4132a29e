"""Build and check both distributions as a release would, without publishing them.

What `make release-check` runs and what `.github/workflows/release.yml` runs on a tag,
before it publishes: the sdist and the wheel of the tap (this folder) and of the sandbox
(`sandbox/`), each wheel built from its sdist (so the sdist is proven complete), then

* `twine check --strict` on every file (metadata, the README renders on PyPI);
* the tap's wheel holds the package, its schemas and `py.typed`, and nothing of the
  sandbox (a production install never carries the emulator);
* both wheels installed into a clean venv, with the tap's locked dependencies as
  constraints (`requirements/tap.txt`); there `tap-commerce-exports --about --format json`
  names the tap, the version of the wheel and every setting, and the sandbox's command
  answers `--help`.

It prints one line per check and exits 1 on the first failure, saying which.

    python scripts/release_check.py [--dist DIR] [--uv PATH] [--twine PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = {"tap-commerce-exports": REPO, "tap-commerce-exports-sandbox": REPO / "sandbox"}


class CheckFailed(Exception):
    """One check of the release failed; the message says which and why."""


def run(cmd: list[str], **kwargs: object) -> str:
    """Run ``cmd``; its output when it succeeds, a :class:`CheckFailed` naming it when not."""
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
        raise CheckFailed(f"{' '.join(cmd)} exited {done.returncode}:\n  " + "\n  ".join(tail))
    return str(done.stdout)


def build(uv: str, dist: Path) -> dict[str, tuple[Path, Path]]:
    """{distribution: (sdist, wheel)}, each wheel built from its sdist by ``uv build``."""
    built: dict[str, tuple[Path, Path]] = {}
    for name, source in DISTRIBUTIONS.items():
        out = dist / name
        run([uv, "build", "--quiet", "--out-dir", str(out), str(source)])
        stem = name.replace("-", "_")
        sdists, wheels = sorted(out.glob(f"{stem}-*.tar.gz")), sorted(out.glob(f"{stem}-*.whl"))
        if len(sdists) != 1 or len(wheels) != 1:
            raise CheckFailed(f"{name}: expected one sdist and one wheel in {out}, found {sdists + wheels}")
        built[name] = (sdists[0], wheels[0])
        print(f"built    {sdists[0].name}, {wheels[0].name}")
    return built


def check_wheel_contents(wheel: Path) -> None:
    """The tap's wheel: its package with schemas and py.typed, nothing of the sandbox."""
    names = zipfile.ZipFile(wheel).namelist()
    missing = [
        want for want in ("tap_commerce_exports/py.typed", "tap_commerce_exports/cli.py") if want not in names
    ]
    if missing:
        raise CheckFailed(f"{wheel.name} lacks {missing}")
    if not any(n.startswith("tap_commerce_exports/schemas/") and n.endswith(".json") for n in names):
        raise CheckFailed(f"{wheel.name} holds no stream schema")
    if any(n.startswith("commerce_sandbox/") for n in names):
        raise CheckFailed(f"{wheel.name} carries the sandbox")
    if not any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith("/LICENSE") for n in names):
        raise CheckFailed(f"{wheel.name} carries no LICENSE")
    print(f"contents {wheel.name}: package, schemas, py.typed, LICENSE; no sandbox")


def wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def install_and_run(uv: str, python: str, built: dict[str, tuple[Path, Path]]) -> None:
    """Both wheels in a clean venv; the tap's --about and the sandbox's --help from there."""
    with tempfile.TemporaryDirectory(prefix="release-check-") as tmp:
        venv = Path(tmp) / "venv"
        run([uv, "venv", "--quiet", "--python", python, str(venv)])
        wheels = [str(wheel) for _, wheel in built.values()]
        run(
            [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
            + ["-c", str(REPO / "requirements" / "tap.txt"), *wheels]
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_COMMERCE_EXPORTS")}
        about = json.loads(
            run([str(venv / "bin" / "tap-commerce-exports"), "--about", "--format", "json"], env=env)
        )
        tap_wheel = built["tap-commerce-exports"][1]
        if about.get("name") != "tap-commerce-exports" or about.get("version") != wheel_version(tap_wheel):
            raise CheckFailed(
                f"--about names {about.get('name')!r} {about.get('version')!r}, "
                f"the wheel is {wheel_version(tap_wheel)!r}"
            )
        if "start_date" not in about.get("settings", {}).get("properties", {}):
            raise CheckFailed("--about from the installed wheel lists no settings")
        print(f"install  clean venv: tap-commerce-exports --about says {about['name']} {about['version']}")
        run([str(venv / "bin" / "tap-commerce-exports-sandbox"), "--help"], env=env)
        print("install  clean venv: tap-commerce-exports-sandbox --help answers")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dist", type=Path, default=REPO / "dist", help="where the files are built")
    parser.add_argument("--uv", default=str(REPO / ".venv-uv" / "bin" / "uv"))
    parser.add_argument("--twine", default=str(REPO / ".venv-release" / "bin" / "twine"))
    parser.add_argument("--python", default=sys.executable, help="the Python of the clean venv")
    args = parser.parse_args(argv)
    try:
        for name in DISTRIBUTIONS:
            for old in (args.dist / name).glob("*"):
                old.unlink()
        built = build(args.uv, args.dist)
        files = [str(path) for pair in built.values() for path in pair]
        run([args.twine, "check", "--strict", *files])
        print(f"twine    check --strict: {len(files)} files PASSED")
        check_wheel_contents(built["tap-commerce-exports"][1])
        versions = {wheel_version(wheel) for _, wheel in built.values()}
        if len(versions) != 1:
            raise CheckFailed(f"the two distributions have different versions: {sorted(versions)}")
        install_and_run(args.uv, args.python, built)
    except CheckFailed as exc:
        print(f"release check FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"release check passed: version {versions.pop()}, files in {args.dist}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
