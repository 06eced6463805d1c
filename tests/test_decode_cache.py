"""The decode cache: built once, reused across runs, rebuilt when its inputs change."""

import os

import numpy as np
import pytest
from image_fixtures import photo_variant, write_bad_file

import imgcls.data.decode_cache as decode_cache
from imgcls.data.decode_cache import BadImagesError, DecodeCache
from imgcls.data.image_io import load_image

SIZE = (24, 20)


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = []
    for i in range(8):
        path = folder / f"{i}.png"
        photo_variant("chelsea" if i % 2 else "coffee", rng).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def decode_count(monkeypatch):
    """Counts the files the cache decodes."""
    calls = []

    def counting_load(path, channels, size):
        calls.append(path)
        return load_image(path, channels, size)

    monkeypatch.setattr(decode_cache, "load_image", counting_load)
    return calls


def test_second_run_reuses_the_cache_and_a_changed_file_rebuilds_it(tmp_path, photos, decode_count):
    first = DecodeCache(tmp_path / "cache", progress=False).load(photos, SIZE, 3)
    assert len(decode_count) == len(photos)
    assert isinstance(first, np.memmap) and not first.flags.writeable
    assert first.shape == (len(photos), 3, *SIZE) and first.dtype == np.uint8
    for path, image in zip(photos, first, strict=True):
        np.testing.assert_array_equal(image, load_image(path, 3, SIZE))

    # A later run (a new cache object, same files): nothing is decoded again.
    again = DecodeCache(tmp_path / "cache", progress=False).load(photos, SIZE, 3)
    assert len(decode_count) == len(photos)
    np.testing.assert_array_equal(again, first)

    # One file changes: the entry is rebuilt and shows the new pixels.
    photo_variant("coffee", np.random.default_rng(99)).rotate(90).save(photos[1])
    stat = os.stat(photos[1])
    os.utime(photos[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    rebuilt = DecodeCache(tmp_path / "cache", progress=False).load(photos, SIZE, 3)
    assert len(decode_count) == 2 * len(photos)
    np.testing.assert_array_equal(rebuilt[1], load_image(photos[1], 3, SIZE))
    assert not np.array_equal(rebuilt[1], first[1])


@pytest.mark.parametrize("change", ["size", "channels", "file_list"])
def test_target_size_channels_and_file_list_are_part_of_the_key(tmp_path, photos, decode_count, change):
    cache = DecodeCache(tmp_path / "cache", progress=False)
    cache.load(photos, SIZE, 3)
    size, channels, paths = SIZE, 3, photos
    if change == "size":
        size = (16, 16)
    elif change == "channels":
        channels = 1
    else:
        paths = photos[:-1]
    images = cache.load(paths, size, channels)
    assert images.shape == (len(paths), channels, *size)
    assert len(decode_count) == len(photos) + len(paths)


def test_a_killed_build_leaves_no_entry_and_the_next_run_builds_a_good_one(tmp_path, photos, monkeypatch):
    calls = []

    def dies_midway(path, channels, size):
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C during the build
        return load_image(path, channels, size)

    monkeypatch.setattr(decode_cache, "load_image", dies_midway)
    cache = DecodeCache(tmp_path / "cache", workers=1, progress=False)
    with pytest.raises(KeyboardInterrupt):
        cache.load(photos, SIZE, 3)
    assert list((tmp_path / "cache").iterdir()) == []

    monkeypatch.setattr(decode_cache, "load_image", load_image)
    images = cache.load(photos, SIZE, 3)
    np.testing.assert_array_equal(images[-1], load_image(photos[-1], 3, SIZE))


def test_load_lists_every_bad_file_and_remembers_them(tmp_path, photos, decode_count):
    bad = [write_bad_file(tmp_path / f"bad_{kind}.jpg", kind) for kind in ("empty", "truncated", "bomb")]
    cache = DecodeCache(tmp_path / "cache", progress=False)
    with pytest.raises(BadImagesError) as error:
        cache.load([*photos, *bad], SIZE, 3)
    for path in bad:
        assert str(path) in str(error.value)
    assert "3 of 11" in str(error.value)
    # The scan result is part of the entry: asking again decodes nothing.
    decoded = cache.decode([*photos, *bad], SIZE, 3)
    assert sorted(decoded.bad) == [8, 9, 10]
    assert len(decode_count) == len(photos) + len(bad)


def test_streaming_scan_decodes_once_and_finds_the_same_bad_files(tmp_path, photos, decode_count):
    bad = write_bad_file(tmp_path / "bad.png", "corrupt")
    cache = DecodeCache(tmp_path / "cache", progress=False)
    first = cache.scan([*photos, bad], SIZE, 1)
    assert list(first) == [len(photos)] and first[len(photos)].path == str(bad)
    assert cache.scan([*photos, bad], SIZE, 1) == first
    assert len(decode_count) == len(photos) + 1
    assert not list((tmp_path / "cache").glob("*.npy"))  # a scan keeps no pixels


def test_a_file_that_could_not_be_read_is_tried_again_next_run(tmp_path, monkeypatch):
    """Root ignores file permissions, so the unreadable file is a PermissionError raised by
    opening it; the file itself does not change, so the second run finds the same entry."""
    import errno

    from PIL import Image as PILImage

    from imgcls.data import image_io

    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for index in range(3):
        path = folder / f"{index}.png"
        PILImage.fromarray(np.full((8, 8), 40 * (index + 1), dtype=np.uint8)).save(path)
        paths.append(str(path))
    cache = DecodeCache(tmp_path / "cache", progress=False)
    real_open = image_io.Image.open

    def locked(path, *args, **kwargs):
        if str(path) == paths[1]:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(image_io.Image, "open", locked)
    first = cache.decode(paths, (8, 8), 1)
    assert list(first.bad) == [1] and first.bad[1].retry and "cannot read file" in first.bad[1].reason
    assert cache.scan(paths, (8, 8), 1)[1].retry  # streaming mode keeps it retryable too
    monkeypatch.undo()  # `chmod 644`: readable now, unchanged otherwise

    second = cache.decode(paths, (8, 8), 1)
    assert second.bad == {}
    assert int(second.images[1].mean()) == 80  # its pixels, decoded into the same entry
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    assert cache.scan(paths, (8, 8), 1) == {}


def test_a_cache_that_does_not_fit_on_the_disk_is_refused_before_writing(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from PIL import Image as PILImage

    from imgcls.data.decode_cache import CacheSpaceError

    path = tmp_path / "a.png"
    PILImage.fromarray(np.zeros((64, 64), dtype=np.uint8)).save(path)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**9, 10**9 - 1000, 1000))
    cache_dir = tmp_path / "cache"
    with pytest.raises(CacheSpaceError, match=r"needs 1 MiB in .*cache, which has 0 MiB free.*data.cache_dir"):
        DecodeCache(cache_dir, progress=False).decode([str(path)] * 4, (64, 64), 1)
    assert list(cache_dir.iterdir()) == []  # nothing half-written


def test_a_disk_that_fills_during_the_build_is_a_clear_error_and_leaves_nothing(tmp_path, photos, monkeypatch):
    import errno

    from imgcls.data.decode_cache import CacheSpaceError

    def disk_full(path, *args, **kwargs):
        open(path, "wb").close()  # the temporary file exists when the write fails
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np.lib.format, "open_memmap", disk_full)
    cache_dir = tmp_path / "cache"
    needed = len(photos) * 3 * SIZE[0] * SIZE[1] + 2**20
    with pytest.raises(CacheSpaceError, match=rf"needs 1 MiB in {cache_dir}, .*\({needed:,} bytes needed") as error:
        DecodeCache(cache_dir, progress=False).load(photos, SIZE, 3)
    assert error.value.__cause__.errno == errno.ENOSPC
    assert list(cache_dir.iterdir()) == []  # the temporary file is gone


def _age(paths, days: float) -> None:
    import time

    for path in paths:
        old = time.time() - days * 86400
        os.utime(path, (old, old))


def test_the_cache_cli_lists_entries_and_prunes_unused_ones_and_leftovers(tmp_path, photos, capsys):
    from imgcls.data.cache import main
    from imgcls.data.decode_cache import cache_entries
    from imgcls.temp_files import temporary_path

    cache_dir = tmp_path / "cache"
    cache = DecodeCache(cache_dir, progress=False)
    cache.load(photos[:4], SIZE, 3)
    cache.load(photos[4:], SIZE, 1)
    old = cache.entry_path(photos[:4], SIZE, 3)
    _age([old, old.with_suffix(".json")], days=40)
    cache.load(photos[4:], SIZE, 1)  # a read is a use: this one is kept
    dead = cache_dir / f".{'f' * 32}.npy.999999999.0123abcd.tmp"  # no such process
    dead.write_bytes(b"\0" * 1000)
    mine = temporary_path(cache_dir / "x.npy")  # this process's: in use
    mine.write_bytes(b"\0")
    (cache_dir / f"{'e' * 32}.npy").write_bytes(b"half an entry")  # its record was never written

    assert main(["--cache-dir", str(cache_dir)]) == 0
    listing = capsys.readouterr().out
    assert f"4x3x{SIZE[0]}x{SIZE[1]}" in listing and str(photos[0].parent) in listing
    assert "Total: 5 entries" in listing and "temporary" in listing and "in use" in listing

    main(["--cache-dir", str(cache_dir), "--prune", "--keep-days", "30", "--dry-run"])
    assert "Would remove 3 entries" in capsys.readouterr().out
    assert len(cache_entries(cache_dir)) == 5  # nothing removed

    main(["--cache-dir", str(cache_dir), "--prune", "--keep-days", "30"])
    assert "Removed 3 entries" in capsys.readouterr().out
    left = sorted(p.name for p in cache_dir.iterdir())
    kept = cache.entry_path(photos[4:], SIZE, 1)
    assert left == sorted([kept.name, kept.with_suffix(".json").name, mine.name])
    np.testing.assert_array_equal(cache.load(photos[4:], SIZE, 1)[0], load_image(photos[4], 1, SIZE))


def test_auto_decode_workers_use_every_cpu_the_process_may_run_on(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert DecodeCache(tmp_path, progress=False).workers == 3  # the default is auto
    assert DecodeCache(tmp_path, workers="auto", progress=False).workers == 3
    assert DecodeCache(tmp_path, workers=1, progress=False).workers == 1
