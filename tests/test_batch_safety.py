"""BATCH files: one name per (stream, account), a root that must be ours, and clean-up of
only this pipeline's finished files (issue 23, items 1 and 3).

Stores `store.1` and `store_1` wrote one file (the second replaced the first after both
were announced: the loader read one account twice); clean-up removed any file matching
the pattern (another format's, another pipeline's, another run's `.partial` in
progress); a root owned or writable by another user was used as it was.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tap_commerce_exports.config.batch import parse_batch_config
from tap_commerce_exports.errors import ConfigError
from tap_commerce_exports.singer.batch import naming
from tap_commerce_exports.singer.batch.cleanup import remove_loaded
from tap_commerce_exports.singer.batch.file_set import BatchFileSet
from tap_commerce_exports.singer.batch.naming import check_distinct
from tap_commerce_exports.singer.batch.root import check_root

UTC = timezone.utc
START, END = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 16, tzinfo=UTC)
OURS, THEIRS = "feedfacecafe", "0badc0ffee00"


def settings(root: Path, fmt: str = "jsonl", prefix: str = ""):
    parsed = parse_batch_config(
        {"encoding": {"format": fmt}, "storage": {"root": root.as_uri(), "prefix": prefix}}
    )
    assert parsed is not None
    return parsed


def write(
    s, account: str, *, stream: str = "orders", pipeline: str = OURS, end=END, finish=True
) -> list[str]:
    announced: list[str] = []
    files = BatchFileSet(
        s, stream=stream, schema={"properties": {"id": {"type": "integer"}}}, account=account, start=START,
        end=end, run_id=f"{pipeline}-0123456789ab", announce=lambda _s, manifest: announced.extend(manifest),
    )  # fmt: skip
    files.write({"id": 1, "account": account})
    if finish:
        files.complete()
    return announced


@pytest.mark.parametrize(
    ("one", "two"),
    [("store.1", "store_1"), ("shop-ä", "shop-ö"), ("M.1", "M_1"), ("x" * 80 + "a", "x" * 80 + "b")],
)
def test_two_accounts_that_read_alike_write_files_of_their_own(tmp_path, one, two):
    s = settings(tmp_path)
    first, second = write(s, one), write(s, two)
    assert first != second, "the second account's file replaced the first's"
    assert len(list(tmp_path.iterdir())) == 2
    assert Path(first[0]).name.startswith(f"orders.{naming._safe(one)}-")  # still readable


def test_two_pairs_whose_names_would_collide_are_refused_naming_both(tmp_path, monkeypatch):
    monkeypatch.setattr(naming, "_digest", lambda stream, account: "0" * 10)  # a digest collision
    with pytest.raises(ConfigError) as caught:
        check_distinct(settings(tmp_path), [("orders", "store.1"), ("orders", "store_1")])
    message = str(caught.value)
    assert "'store.1'" in message and "'store_1'" in message and "\n" not in message


def test_the_clean_up_removes_only_this_pipelines_finished_files_of_this_format(tmp_path):
    s = settings(tmp_path)
    ours = write(s, "a1")
    theirs = write(s, "a1", pipeline=THEIRS)  # another pipeline (another state) in the same folder
    parquet = write(settings(tmp_path, "parquet"), "a1")  # another format's, same pipeline
    partial = write(s, "a1", pipeline=THEIRS, end=END - timedelta(days=1), finish=False)  # being written
    assert partial == []
    before = {p.name for p in tmp_path.iterdir()}
    assert remove_loaded(s, "orders", "a1", END, OURS) == 1
    left = {p.name for p in tmp_path.iterdir()}
    assert before - left == {Path(ours[0]).name}
    assert {Path(theirs[0]).name, Path(parquet[0]).name} <= left
    assert any(n.endswith(".partial") for n in left), "another run's file in progress was removed"


def test_a_missing_root_is_created_private(tmp_path):
    s = settings(tmp_path / "new" / "batches")
    check_root(s)
    assert (os.stat(s.root).st_mode & 0o777) == 0o700


def test_a_root_that_is_a_link_is_refused(tmp_path):
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    with pytest.raises(ConfigError, match="is a symbolic link"):
        check_root(settings(tmp_path / "link"))


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o1777])
def test_a_root_others_can_write_to_is_refused_saying_how_to_fix_it(tmp_path, mode):
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(mode)
    with pytest.raises(ConfigError, match="can be written by other users") as caught:
        check_root(settings(root))
    assert "chmod go-w" in str(caught.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_root_owned_by_another_user_is_refused(tmp_path):
    root = tmp_path / "theirs"
    root.mkdir(mode=0o755)
    os.chown(root, 12345, 12345)
    with pytest.raises(ConfigError, match=r"is owned by another user \(uid 12345\)"):
        check_root(settings(root))
