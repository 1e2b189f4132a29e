"""Move an account's bookmarks from one group's Meltano state to another's.

    python -m orchestration.regroup --extractor tap-commerce-exports--clover \\
        --from clover-a --to clover-b --account M1 [--loader target-duckdb] [--dry-run]

Why: a group's state id is `<env>:<extractor>-to-<loader>:<group>`, and the tap keeps one
state partition per (stream, account) inside it. Moving an account to another group in
the groups file without moving its partitions would make the new group start that
account from `start_date` again (and the old state would keep a bookmark nobody reads).
Run this between editing the groups file and the next runs of the two groups (with
neither running: Meltano refuses a run whose state id is in use, but not this command).

The target's state is written first, then the source's: if the command stops halfway,
the account's bookmarks are in both states, never in neither.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path
from typing import Any

from orchestration.meltano_cli import Meltano, MeltanoError, state_id


class RegroupError(ValueError):
    """The move cannot be done as asked; the message says why and what to do."""


def _owns(partition: dict[str, Any], account: str) -> bool:
    return account in (str(v) for v in (partition.get("context") or {}).values())


def move_account(
    source: dict[str, Any], target: dict[str, Any], account: str
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(new source, new target, streams moved): `account`'s bookmarks leave source for target.

    A partitioned bookmark (`partitions: [{context, ...}]`) moves the partitions whose
    context names the account. An unpartitioned one (a one-account state) moves whole,
    unless the target already holds an unpartitioned bookmark of that stream (another
    account's: two single-account states cannot share one id)."""
    source, target = copy.deepcopy(source), copy.deepcopy(target)
    src_marks: dict[str, Any] = source.get("bookmarks") or {}
    dst_marks: dict[str, Any] = target.setdefault("bookmarks", {})
    moved: list[str] = []
    for stream in list(src_marks):
        mark = src_marks[stream]
        if "partitions" in mark:
            mine = [p for p in mark["partitions"] if _owns(p, account)]
            if not mine:
                continue
            mark["partitions"] = [p for p in mark["partitions"] if not _owns(p, account)]
            dst = dst_marks.setdefault(stream, {"partitions": []})
            if "partitions" not in dst:
                raise RegroupError(
                    f"stream {stream}: the target group's bookmark is not per account: "
                    "it belongs to a single-account sync; move that account out first"
                )
            contexts = [p.get("context") for p in mine]
            dst["partitions"] = [p for p in dst["partitions"] if p.get("context") not in contexts] + mine
            if not mark["partitions"]:
                del src_marks[stream]
        else:
            if stream in dst_marks:
                raise RegroupError(
                    f"stream {stream}: both groups hold a one-account bookmark; a group of several "
                    "accounts needs the tap's per-account state (the accounts setting)"
                )
            dst_marks[stream] = src_marks.pop(stream)
        moved.append(stream)
    return source, target, moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.regroup", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--extractor", required=True, help="Meltano extractor of both groups")
    parser.add_argument("--from", dest="source", required=True, help="group the account leaves")
    parser.add_argument("--to", dest="target", required=True, help="group the account joins")
    parser.add_argument("--account", required=True, help="store subdomain or merchant id")
    parser.add_argument("--loader", default="target-duckdb")
    parser.add_argument("--environment", default=os.environ.get("MELTANO_ENVIRONMENT", "dev"))
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    parser.add_argument(
        "--meltano", default=os.environ.get("MELTANO_BIN", "meltano"), help="meltano executable"
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would move, change nothing")
    args = parser.parse_args(argv)
    if args.source == args.target:
        print("regroup: --from and --to name the same group: nothing to move", file=sys.stderr)
        return 2
    meltano = Meltano(args.project_dir, args.meltano, args.environment)
    src_id = state_id(args.environment, args.extractor, args.loader, args.source)
    dst_id = state_id(args.environment, args.extractor, args.loader, args.target)
    try:
        source, target = meltano.get_state(src_id), meltano.get_state(dst_id)
        new_source, new_target, moved = move_account(source, target, args.account)
        if not moved:
            print(f"regroup: state {src_id} holds no bookmark of account {args.account}", file=sys.stderr)
            return 1
        verb = "would move" if args.dry_run else "moved"
        if not args.dry_run:
            meltano.set_state(dst_id, new_target)  # target first: never in neither state
            meltano.set_state(src_id, new_source)
    except (RegroupError, MeltanoError) as exc:
        print(f"regroup: {exc}", file=sys.stderr)
        return 1
    print(
        f"regroup: {verb} account {args.account}'s bookmarks of {len(moved)} streams from {src_id} to {dst_id}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
