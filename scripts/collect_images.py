"""Download images listed in a CSV (``url,label``) into ``root/<label>/`` for ``data=folder``.

    python scripts/collect_images.py urls.csv data/my_photos [--timeout 10] [--retries 2]

Only files that fully decode as images (the same decoder training uses) are kept, named
by their content hash so the same image is stored once, however many URLs point at it
(also across re-runs). Every row ends up in the report, ``<root>_report.csv`` unless
``--report`` says otherwise: ``saved``, ``duplicate`` or ``failed`` with the reason.
Connection errors, timeouts and HTTP 429/5xx are retried with exponential backoff;
other HTTP errors (404, 403, ...) are not.

Only ``http``/``https`` URLs are fetched (``--allow-scheme file`` adds others: a ``file://``
row would copy a local file into the dataset). Each download has a total ``--deadline`` and
a ``--max-bytes`` limit, whatever pace the server sends at. Rows whose label cannot be a
folder name are refused before anything is downloaded, and the report is written row by
row, so an interrupted run leaves the rows it did.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import heapq
import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image

from imgcls.data.image_io import ImageDecodeError, is_image_file, load_image

USER_AGENT = "imgcls-collect-images/1.0 (+https://pypi.org/project/imgcls)"
# PIL's name for a format -> the suffix the datasets read it by.
SUFFIX_OF_FORMAT = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "GIF": ".gif",
    "BMP": ".bmp",
    "WEBP": ".webp",
    "TIFF": ".tif",
}
REPORT_COLUMNS = ["line", "url", "label", "status", "file", "reason"]
SCHEMES = ("http", "https")
# The longest file name most file systems take (ext4, APFS, NTFS), in bytes of UTF-8.
NAME_MAX = 255


class DownloadError(Exception):
    """A URL that gave no image bytes; ``retry`` says whether trying again may help."""

    def __init__(self, reason: str, retry: bool):
        super().__init__(reason)
        self.retry = retry


@dataclass
class Row:
    line: int
    url: str
    label: str


def read_rows(csv_path: Path, schemes=SCHEMES) -> tuple[list[Row], list[dict]]:
    """The CSV's rows, and a report entry for each one that cannot be used (blank fields, a
    label that cannot be a folder, a URL scheme not in ``schemes``)."""
    with open(csv_path, newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        missing = {"url", "label"} - set(reader.fieldnames or [])
        if missing:
            raise SystemExit(f"{csv_path}: needs a header with columns url,label; missing {sorted(missing)}")
        rows, rejected = [], []
        for line, record in enumerate(reader, start=2):
            url, label = (record.get("url") or "").strip(), (record.get("label") or "").strip()
            problem = (_url_problem(url, schemes) or _label_problem(label)) if url else "blank url"
            if problem:
                rejected.append(_entry(Row(line, url, label), "failed", reason=problem))
            else:
                rows.append(Row(line, url, label))
    return rows, rejected


def download(
    url: str, timeout: float, retries: int, backoff: float, max_bytes: int, deadline: float = 120.0
) -> bytes:
    """The response body; raises :class:`DownloadError` after the last failed attempt."""
    attempt = 0
    while True:
        try:
            return _fetch(url, timeout, max_bytes, deadline)
        except DownloadError as error:
            if not error.retry or attempt == retries:
                attempts = f" (after {attempt + 1} attempts)" if attempt else ""
                raise DownloadError(f"{error}{attempts}", retry=False) from None
        time.sleep(backoff * 2**attempt)
        attempt += 1


def _fetch(url: str, timeout: float, max_bytes: int, deadline: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    give_up = time.monotonic() + deadline
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            # In chunks, so that a server sending a byte a second (each read within the
            # timeout) still ends at the deadline.
            chunks, size = [], 0
            while size <= max_bytes:
                chunk = response.read1(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if time.monotonic() > give_up:
                    raise DownloadError(f"not finished after --deadline={deadline:g} s", retry=False)
            body = b"".join(chunks)
    except urllib.error.HTTPError as error:
        raise DownloadError(
            f"HTTP {error.code} {error.reason}", retry=error.code == 429 or error.code >= 500
        ) from None
    except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, dropped connections
        reason = getattr(error, "reason", error)
        kind = "timed out" if isinstance(reason, TimeoutError) else "connection failed"
        raise DownloadError(f"{kind} ({type(reason).__name__}: {reason})", retry=True) from None
    except ValueError as error:  # not a URL urllib can open
        raise DownloadError(f"bad url ({error})", retry=False) from None
    if len(body) > max_bytes:
        raise DownloadError(f"larger than --max-bytes={max_bytes}", retry=False)
    return body


def store(body: bytes, folder: Path, known: dict[str, Path]) -> tuple[str, Path | None, str]:
    """Keep ``body`` in ``folder`` if it decodes and is new: (status, file, reason)."""
    digest = hashlib.sha256(body).hexdigest()
    if digest in known:
        return "duplicate", known[digest], f"same content as {known[digest]}"
    folder.mkdir(parents=True, exist_ok=True)
    # A hidden temporary name: a half-written file is never taken for a sample.
    handle, temporary = tempfile.mkstemp(prefix=".download-", dir=folder)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(body)
        load_image(temporary)  # a full decode: truncated or corrupt files fail here
        with Image.open(temporary) as image:
            image_format = image.format
        suffix = SUFFIX_OF_FORMAT.get(image_format or "")
        if suffix is None:
            return "failed", None, f"image format {image_format} is not one the datasets read"
        target = folder / f"{digest[:16]}{suffix}"
        os.replace(temporary, target)
    except ImageDecodeError as error:
        return "failed", None, f"not a decodable image: {error.reason}"
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    known[digest] = target
    return "saved", target, ""


def collect(rows: list[Row], root: Path, args):
    """Download all rows (``args.workers`` at a time); decode, de-duplicate and save in order,
    yielding each row's report entry as it is done."""
    known = {_hash(path): path for path in root.glob("*/*") if path.is_file() and is_image_file(path)}

    def fetch(row: Row):
        try:
            body = download(row.url, args.timeout, args.retries, args.backoff, args.max_bytes, args.deadline)
            return body, None
        except DownloadError as error:
            return None, str(error)

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for row, (body, error) in zip(rows, pool.map(fetch, rows), strict=True):
            if error is not None:
                yield _entry(row, "failed", reason=error)
                continue
            status, file, reason = store(body, root / row.label, known)
            yield _entry(row, status, file=file, reason=reason)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("csv", type=Path, help="CSV with a header and columns url,label")
    parser.add_argument("root", type=Path, help="images go to root/<label>/")
    parser.add_argument("--report", type=Path, help="report CSV (default: <root>_report.csv)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to connect and per read")
    parser.add_argument("--retries", type=int, default=2, help="extra attempts after a retryable failure")
    parser.add_argument("--backoff", type=float, default=1.0, help="seconds before the first retry, doubling")
    parser.add_argument("--workers", type=int, default=8, help="downloads in parallel")
    parser.add_argument("--max-bytes", type=int, default=50_000_000, help="larger files are refused")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds a whole download may take")
    parser.add_argument(
        "--allow-scheme", action="append", default=[], help="URL schemes besides http(s), e.g. file"
    )
    args = parser.parse_args(argv)

    # Everything that can be checked is checked before the first download.
    args.root = args.root.resolve()
    rows, rejected = read_rows(args.csv, (*SCHEMES, *args.allow_scheme))
    args.root.mkdir(parents=True, exist_ok=True)
    report = args.report or args.root.with_name(f"{args.root.name}_report.csv")
    entries = []
    with open(report, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=REPORT_COLUMNS)
        writer.writeheader()
        done = collect(rows, args.root, args)
        for entry in heapq.merge(rejected, done, key=lambda entry: entry["line"]):
            writer.writerow(entry)
            file.flush()  # row by row: a crash or Ctrl-C leaves the rows done so far
            entries.append(entry)
    counts = {
        status: sum(e["status"] == status for e in entries) for status in ("saved", "duplicate", "failed")
    }
    print(
        f"{counts['saved']} saved, {counts['duplicate']} duplicates skipped, {counts['failed']} failed "
        f"(of {len(entries)} rows); report: {report}"
    )
    return 0


def _url_problem(url: str, schemes) -> str:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in schemes:
        allowed = ", ".join(schemes)
        return f"URL scheme {scheme or '(none)'!r} is not fetched ({allowed} only; --allow-scheme adds one)"
    return ""


def _label_problem(label: str) -> str:
    if not label:
        return "blank label"
    if label.startswith(".") or "/" in label or "\\" in label:
        return f"label {label!r} cannot be a folder name (no leading dot or slashes)"
    if len(label.encode("utf-8")) > NAME_MAX:
        return f"label is {len(label.encode('utf-8'))} bytes long, more than a folder name takes ({NAME_MAX})"
    return ""


def _entry(row: Row, status: str, file: Path | None = None, reason: str = "") -> dict:
    return {
        "line": row.line,
        "url": row.url,
        "label": row.label,
        "status": status,
        "file": file or "",
        "reason": reason,
    }


def _hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    sys.exit(main())
