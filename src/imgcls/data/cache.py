"""The decode cache's size, and pruning: ``python -m imgcls.data.cache [--cache-dir DIR] [--prune]``.

Lists each entry (the folder of its images, its shape, size and last use) and the total;
``--prune`` removes the entries not used for ``--keep-days`` days and what killed builds
left behind (``--dry-run``: only show them). Removing an entry is always safe: the next run
that needs it decodes it again.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from imgcls.data.decode_cache import CacheEntry, cache_entries, prune_cache
from imgcls.display import display_name

# conf/paths/default.yaml's data_dir with conf/data/_files.yaml's cache_dir, run from the repository.
DEFAULT_CACHE_DIR = Path("data/.cache/decoded")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgcls.data.cache", description=__doc__.split("\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="data.cache_dir of the runs")
    parser.add_argument("--prune", action="store_true", help="remove stale entries")
    parser.add_argument("--keep-days", type=float, default=30.0, help="keep entries used within this many days")
    parser.add_argument("--dry-run", action="store_true", help="with --prune: show what would be removed")
    args = parser.parse_args(argv)
    if args.keep_days < 0:
        parser.error(f"--keep-days={args.keep_days:g} must be >= 0")
    if not args.cache_dir.is_dir():
        print(f"{args.cache_dir}: no decode cache there (set --cache-dir to the runs' data.cache_dir)")
        return 0
    entries = cache_entries(args.cache_dir)
    print(f"Decode cache {args.cache_dir}:")
    print(format_table(entries))
    print(f"Total: {len(entries)} entries, {_mib(sum(e.bytes for e in entries))}")
    if args.prune:
        removed = prune_cache(args.cache_dir, args.keep_days, dry_run=args.dry_run)
        verb = "Would remove" if args.dry_run else "Removed"
        print(
            f"{verb} {len(removed)} entries ({_mib(sum(e.bytes for e in removed))}) not used for "
            f"{args.keep_days:g} days or left by killed builds"
            + "".join(f"\n  {e.key} ({e.kind}, {display_name(e.source) or '?'})" for e in removed)
        )
    return 0


def format_table(entries: list[CacheEntry], now: float | None = None) -> str:
    now = time.time() if now is None else now
    header = ("key", "kind", "images", "size", "last used", "source")
    rows = [
        (
            entry.key[:12],
            entry.kind,
            "x".join(map(str, entry.shape)) if entry.shape else "-",
            _mib(entry.bytes),
            f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(entry.last_used))} "
            f"({(now - entry.last_used) / 86400:.0f} d ago)",
            display_name(entry.source) or "?",
        )
        for entry in entries
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


if __name__ == "__main__":
    raise SystemExit(main())
