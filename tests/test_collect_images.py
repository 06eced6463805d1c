"""scripts/collect_images.py against a local HTTP server: keeps decodable, new images only."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from local_http import Response, serve
from PIL import Image

from imgcls.data.image_io import load_image

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "collect_images.py"


def encoded(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def routes():
    from skimage import data

    cat = encoded(data.chelsea()[::4, ::4], "JPEG")
    coffee = encoded(data.coffee()[::4, ::4], "PNG")
    return {
        "/cat.jpg": Response(cat, content_type="image/jpeg"),
        "/cat-again.jpg": Response(cat, content_type="image/jpeg"),  # the same bytes
        "/coffee.png": Response(coffee, content_type="image/png"),
        "/truncated.jpg": Response(cat[: len(cat) // 2], content_type="image/jpeg"),
        "/page.html": Response(b"<html><body>no image here</body></html>", content_type="text/html"),
        "/slow.jpg": Response(cat, delay=3.0),
        "/busy.jpg": Response(b"try later", status=503),
    }


def run_collector(csv_path: Path, root: Path, *args: str):
    command = [
        sys.executable,
        str(SCRIPT),
        str(csv_path),
        str(root),
        "--timeout",
        "0.5",
        "--backoff",
        "0",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with open(root.with_name(f"{root.name}_report.csv"), newline="", encoding="utf-8") as file:
        return result, {int(row["line"]): row for row in csv.DictReader(file)}


def write_urls(path: Path, base: str, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["url", "label"])
        writer.writerows(
            (f"{base}{route}" if route.startswith("/") else route, label) for route, label in rows
        )
    return path


@pytest.mark.e2e
def test_collects_decodable_unique_images_and_reports_every_failure(tmp_path, routes):
    rows = [
        ("/cat.jpg", "cat"),  # line 2
        ("/coffee.png", "咖啡"),  # 3: a UTF-8 class folder
        ("/cat-again.jpg", "cat"),  # 4: duplicate content
        ("/truncated.jpg", "cat"),  # 5
        ("/page.html", "cat"),  # 6
        ("/missing.jpg", "cat"),  # 7: 404, not retried
        ("/slow.jpg", "cat"),  # 8: times out on every attempt
        ("/busy.jpg", "cat"),  # 9: 503, retried
        ("/cat.jpg", ""),  # 10: no label
        ("/cat.jpg", "../escape"),  # 11: not a folder name
    ]
    root = tmp_path / "photos"
    with serve(routes) as (base, hits):
        result, report = run_collector(write_urls(tmp_path / "urls.csv", base, rows), root, "--retries", "1")

    assert {line: row["status"] for line, row in report.items()} == {
        2: "saved",
        3: "saved",
        4: "duplicate",
        **dict.fromkeys([5, 6, 7, 8, 9, 10, 11], "failed"),
    }
    reasons = {line: row["reason"] for line, row in report.items()}
    assert reasons[4] == f"same content as {root / 'cat' / Path(report[2]['file']).name}"
    assert reasons[5].startswith("not a decodable image") and reasons[6].startswith("not a decodable image")
    assert reasons[7] == "HTTP 404 Not Found"
    assert reasons[8].startswith("timed out") and reasons[8].endswith("(after 2 attempts)")
    assert reasons[9] == "HTTP 503 Service Unavailable (after 2 attempts)"
    assert reasons[10] == "blank label" and "cannot be a folder name" in reasons[11]
    assert (hits["/missing.jpg"], hits["/slow.jpg"], hits["/busy.jpg"]) == (1, 2, 2)

    saved = sorted(p.relative_to(root).parts[0] for p in root.rglob("*") if p.is_file())
    assert saved == ["cat", "咖啡"]  # nothing else, not even a temporary file
    assert load_image(report[2]["file"]).shape[0] == 3 and Path(report[3]["file"]).suffix == ".png"
    assert "2 saved, 1 duplicates skipped, 7 failed" in result.stdout


def test_a_second_run_adds_no_copies(tmp_path, routes):
    root = tmp_path / "photos"
    with serve(routes) as (base, _):
        urls = write_urls(tmp_path / "urls.csv", base, [("/cat.jpg", "cat"), ("/coffee.png", "coffee")])
        run_collector(urls, root)
        _, report = run_collector(urls, root)
    assert [row["status"] for row in report.values()] == ["duplicate", "duplicate"]
    assert len([p for p in root.rglob("*") if p.is_file()]) == 2


def test_csv_without_url_label_header_is_refused(tmp_path):
    (tmp_path / "urls.csv").write_text("http://127.0.0.1/x.jpg,cat\n")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "urls.csv"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "needs a header with columns url,label" in result.stderr


def test_only_http_urls_are_fetched_unless_a_scheme_is_allowed(tmp_path, routes):
    secret = tmp_path / "secret.png"
    secret.write_bytes(routes["/coffee.png"].body)
    with serve({}) as (base, _):
        csv_path = write_urls(tmp_path / "urls.csv", base, [(secret.as_uri(), "leak"), ("ftp://x/y.jpg", "ftp")])
        _, report = run_collector(csv_path, tmp_path / "photos")
        assert "URL scheme 'file' is not fetched" in report[2]["reason"]
        assert "URL scheme 'ftp' is not fetched" in report[3]["reason"]
        assert not (tmp_path / "photos" / "leak").exists()
        _, report = run_collector(csv_path, tmp_path / "photos", "--allow-scheme", "file")
        assert report[2]["status"] == "saved"


def test_a_trickling_server_ends_at_the_deadline_and_long_labels_are_refused_first(tmp_path, routes):
    import time

    trickle = {"/trickle.jpg": Response(routes["/cat.jpg"].body, trickle=0.05)}
    with serve(trickle) as (base, hits):
        long_label = "x" * 300
        csv_path = write_urls(tmp_path / "urls.csv", base, [("/trickle.jpg", "cat"), ("/trickle.jpg?2", long_label)])
        started = time.monotonic()
        _, report = run_collector(csv_path, tmp_path / "photos", "--deadline", "1", "--timeout", "5")
        assert time.monotonic() - started < 30  # the whole file would take minutes
        assert "not finished after --deadline=1 s" in report[2]["reason"]
        assert "more than a folder name takes" in report[3]["reason"]
        assert hits == {"/trickle.jpg": 1}  # the long label's URL was never requested


def test_root_dot_works_and_the_report_is_written_row_by_row(tmp_path, routes):
    import signal
    import time

    slow = {**routes, "/stall.jpg": Response(routes["/cat.jpg"].body, delay=30)}
    work = tmp_path / "photos"
    work.mkdir()
    with serve(slow) as (base, _):
        csv_path = write_urls(tmp_path / "urls.csv", base, [("/cat.jpg", "cat"), ("/stall.jpg", "cat")])
        command = [sys.executable, str(SCRIPT), str(csv_path), ".", "--workers", "1", "--timeout", "60"]
        process = subprocess.Popen(command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        report = tmp_path / "photos_report.csv"  # beside root=., named after the folder
        for _ in range(200):
            if report.is_file() and "cat.jpg" in report.read_text():
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    assert [(row["line"], row["status"]) for row in rows] == [("2", "saved")]
    assert len(list((work / "cat").iterdir())) == 1
