"""Decode image files once into a memory-mapped uint8 array that later epochs and runs reuse.

A cache entry is ``<key>.npy`` (the images, ``[N, C, H, W]``) plus ``<key>.json`` (which
files failed to decode and why, the folder they are in; its modification time is the entry's
last use). ``python -m imgcls.data.cache`` lists the entries and prunes old ones. The key hashes the file list, each file's size and
modification time, the target size and the channel count, so any change to those builds a
new entry. Both files are written under temporary names and renamed into place, the JSON
last: an entry without its JSON is never read, so a killed build leaves nothing half-made.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgcls.data.image_io import ImageDecodeError, load_image
from imgcls.errors import UserError
from imgcls.temp_files import remove_stale, stale_temporaries, temporary_path, temporary_target

# Bump when the decoded pixels would change for the same files (e.g. a new resize method).
CACHE_FORMAT = 2  # 2: large JPEGs decoded at reduced scale (image_io.reduced_jpeg_decode)


@dataclass(frozen=True)
class BadFile:
    """A file that could not be decoded, and why; ``retry``: it could not be read at all, so
    a cache entry remembers it only until the next run tries it again."""

    path: str
    reason: str
    retry: bool = False


class CacheSpaceError(UserError, OSError):
    """The disk of the cache directory has no room for the decoded images."""

    kind = "Decode cache error"


class BadImagesError(UserError, ValueError):
    """Some files are not decodable images; the message lists every one of them."""

    kind = "Data error"

    def __init__(self, bad: Sequence[BadFile], total: int, hint: str = ""):
        self.bad = list(bad)
        lines = "\n".join(f"  {item.path}: {item.reason}" for item in self.bad)
        super().__init__(f"{len(self.bad)} of {total} image files cannot be decoded:\n{lines}{hint}")


@dataclass
class DecodedImages:
    """``images[i]`` is ``paths[i]`` decoded; a bad file's slot is zeros and listed in ``bad``."""

    images: np.ndarray
    bad: dict[int, BadFile] = field(default_factory=dict)


class DecodeCache:
    """Decoded, resized images of a file list, kept under ``cache_dir``.

    Args:
        cache_dir: where entries live; safe to delete at any time (it is rebuilt).
        workers: decoding threads, or ``"auto"``: one per CPU this process may run on
            (:func:`usable_cpus`). Threads, not processes: PIL releases the GIL while it
            decodes and resizes, and threads measured as fast or faster (README "Decode cache").
        progress: show a progress bar while an entry is built.
        decoder: ``pil`` or ``nvjpeg`` (batches of JPEGs decoded on ``device``, the rest with
            PIL: :mod:`imgcls.data.batch_jpeg`); part of the key, as its pixels differ slightly.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        workers: int | str = "auto",
        progress: bool = True,
        decoder: str = "pil",
        device: str = "cuda",
    ):
        self.cache_dir = Path(cache_dir)
        self.workers = usable_cpus() if workers == "auto" else max(1, int(workers))
        if decoder not in ("pil", "nvjpeg"):
            raise ValueError(f"decoder must be pil or nvjpeg, got {decoder!r}")
        self.decoder, self.device = decoder, device
        self.progress = progress

    def load(self, paths: Sequence[str | Path], size: tuple[int, int], channels: int) -> np.ndarray:
        """uint8 ``[N, C, H, W]`` (a read-only memmap); raises :class:`BadImagesError` listing
        every file that does not decode."""
        decoded = self.decode(paths, size, channels)
        if decoded.bad:
            raise BadImagesError(list(decoded.bad.values()), len(paths))
        return decoded.images

    def decode(self, paths: Sequence[str | Path], size: tuple[int, int], channels: int) -> DecodedImages:
        """Like :meth:`load`, but bad files are returned (zeros in their slots), not raised."""
        key = cache_key(paths, size, channels, self.decoder)
        shape = (len(paths), channels, *size)
        entry = self._read(key, shape)
        if entry is None:
            self._build(key, paths, size, channels)
            entry = self._read(key, shape)
        elif any(item.retry for item in entry.bad.values()):
            self._retry_unread(key, paths, size, channels, entry.bad)
            entry = self._read(key, shape)
        return entry

    def scan(self, paths: Sequence[str | Path], size: tuple[int, int], channels: int) -> dict[int, BadFile]:
        """Fully decode every file without keeping the pixels (for streaming mode): the bad
        ones by index. The result is remembered under the same key, so it runs once."""
        key = cache_key(paths, size, channels, self.decoder)
        for record_path in (self.cache_dir / f"{key}.json", self.cache_dir / f"{key}.scan.json"):
            try:
                bad = _bad_from_record(json.loads(record_path.read_text()))
            except (OSError, ValueError, KeyError):
                continue
            _mark_used(record_path)
            decoder = _Decoder(size, channels)
            for index in [i for i, item in bad.items() if item.retry]:  # unread last time: try again
                result = decoder(paths[index])
                if isinstance(result, BadFile):
                    bad[index] = result
                else:
                    del bad[index]
            return bad
        bad = self._decode_all(paths, size, channels, into=None)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._write_json(self.cache_dir / f"{key}.scan.json", bad, paths)
        return bad

    def entry_path(self, paths: Sequence[str | Path], size: tuple[int, int], channels: int) -> Path:
        """The ``.npy`` file that holds (or will hold) these images."""
        return self.cache_dir / f"{cache_key(paths, size, channels, self.decoder)}.npy"

    # --- internals ---------------------------------------------------------------------
    def _read(self, key: str, shape: tuple[int, ...]) -> DecodedImages | None:
        array_path, meta_path = self.cache_dir / f"{key}.npy", self.cache_dir / f"{key}.json"
        if not (array_path.exists() and meta_path.exists()):
            return None
        try:
            images = np.load(array_path, mmap_mode="r")
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return None  # unreadable (e.g. disk trouble): rebuild it
        if images.shape != shape or images.dtype != np.uint8:
            return None
        _mark_used(meta_path)
        return DecodedImages(images, _bad_from_record(meta))

    def _build(self, key: str, paths: Sequence[str | Path], size: tuple[int, int], channels: int) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        remove_stale(self.cache_dir)  # full-size arrays of builds that were killed
        # A memory-mapped array on a disk that fills up kills the process with SIGBUS, no
        # message and a half-written file left behind: check the space first.
        needed = len(paths) * channels * size[0] * size[1] + 2**20
        free = shutil.disk_usage(self.cache_dir).free
        if free < needed:
            raise self._space_error(needed, free)
        # Per-process temporary names: parallel builders (e.g. DDP ranks) never share a file.
        array_tmp = temporary_path(self.cache_dir / f"{key}.npy")
        try:
            images = np.lib.format.open_memmap(
                array_tmp, mode="w+", dtype=np.uint8, shape=(len(paths), channels, *size)
            )
            bad = self._decode_all(paths, size, channels, into=images)
            images.flush()
            del images
            os.replace(array_tmp, self.cache_dir / f"{key}.npy")
            self._write_json(self.cache_dir / f"{key}.json", bad, paths)
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            # The disk filled while the entry was written (another process wrote too).
            raise self._space_error(needed, shutil.disk_usage(self.cache_dir).free) from error
        finally:
            array_tmp.unlink(missing_ok=True)

    def _space_error(self, needed: int, free: int) -> CacheSpaceError:
        return CacheSpaceError(
            f"the decode cache needs {needed / 2**20:,.0f} MiB in {self.cache_dir}, which has "
            f"{free / 2**20:,.0f} MiB free ({needed:,} bytes needed, {free:,} free): free some space (python -m imgcls.data.cache "
            f"--cache-dir {self.cache_dir} --prune), set data.cache_dir to a larger disk, or "
            "data.cache=false (decode every epoch)"
        )

    def _retry_unread(
        self, key: str, paths: Sequence[str | Path], size: tuple[int, int], channels: int, bad: dict
    ) -> None:
        """Decode again the files an entry could not read, into their slots of the entry."""
        decoder = _Decoder(size, channels)
        images = np.load(self.cache_dir / f"{key}.npy", mmap_mode="r+")
        bad = dict(bad)
        for index in [i for i, item in bad.items() if item.retry]:
            result = decoder(paths[index])
            if isinstance(result, BadFile):
                bad[index] = result
            else:
                images[index] = result
                del bad[index]
        images.flush()
        del images
        self._write_json(self.cache_dir / f"{key}.json", bad, paths)

    def _decode_all(
        self, paths: Sequence[str | Path], size: tuple[int, int], channels: int, into: np.ndarray | None
    ) -> dict[int, BadFile]:
        from tqdm.auto import tqdm

        bad: dict[int, BadFile] = {}
        action = "Decoding" if into is not None else "Checking"
        with ThreadPoolExecutor(self.workers) as pool:
            decode = _Decoder(size, channels)
            if self.decoder == "nvjpeg":
                from imgcls.data.batch_jpeg import BatchJpegDecoder

                results = BatchJpegDecoder(size, channels, decode, self.device).decode(paths, map_=pool.map)
            else:
                results = pool.map(decode, paths, chunksize=32)
            bar = tqdm(
                results,
                total=len(paths),
                desc=f"{action} {len(paths)} images (once; kept in {self.cache_dir})",
                unit="img",
                disable=not self.progress,
            )
            for index, result in enumerate(bar):
                if isinstance(result, BadFile):
                    bad[index] = result
                elif into is not None:
                    into[index] = result
        return bad

    def _write_json(self, path: Path, bad: dict[int, BadFile], paths: Sequence[str | Path]) -> None:
        tmp = temporary_path(path)
        record = {
            "format": CACHE_FORMAT,
            "count": len(paths),
            "source": _common_folder(paths),
            "bad": [(index, item.path, item.reason, item.retry) for index, item in sorted(bad.items())],
        }
        try:
            # ASCII with \u escapes: a file name that is not valid UTF-8 (lone surrogates) is
            # written, and read back, exactly.
            tmp.write_text(json.dumps(record))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class CacheEntry:
    """The files of one cache entry (or one leftover file), as ``python -m imgcls.data.cache`` lists them.

    ``kind``: ``decoded`` (images and record), ``scan`` (the bad files of a streaming run),
    ``incomplete`` (a half of an entry: never read, rebuilt when needed), ``temporary`` (of a
    process that no longer runs) or ``in use`` (being written by a running process).
    """

    key: str
    kind: str
    files: tuple[Path, ...]
    bytes: int
    last_used: float  # seconds since the epoch
    source: str = ""  # the folder of its image files
    shape: tuple[int, ...] | None = None  # [N, C, H, W] of a decoded entry

    def stale(self, older_than: float) -> bool:
        """What pruning removes: leftovers of killed builds, and entries unused since ``older_than``."""
        if self.kind == "in use":
            return False
        return self.kind in ("incomplete", "temporary") or self.last_used < older_than


def cache_entries(cache_dir: str | Path) -> list[CacheEntry]:
    """Every entry and leftover file in ``cache_dir``, least recently used first."""
    cache_dir = Path(cache_dir)
    try:
        names = sorted(path for path in cache_dir.iterdir() if path.is_file())
    except OSError:
        return []
    stale = set(stale_temporaries(cache_dir))
    groups: dict[str, list[Path]] = {}
    leftovers = []
    for path in names:
        if temporary_target(path) is not None:
            leftovers.append(_entry_of_temporary(path, path in stale))
        else:
            groups.setdefault(path.name.split(".")[0], []).append(path)
    entries = [_entry_of_group(key, files) for key, files in groups.items()] + leftovers
    return sorted(entries, key=lambda entry: entry.last_used)


def prune_cache(cache_dir: str | Path, keep_days: float, dry_run: bool = False) -> list[CacheEntry]:
    """Remove (unless ``dry_run``) the entries not used for ``keep_days`` and the leftovers of
    killed builds; return them."""
    older_than = time.time() - keep_days * 86400
    stale = [entry for entry in cache_entries(cache_dir) if entry.stale(older_than)]
    if not dry_run:
        for entry in stale:
            # The record first: an entry without it is never read, whatever happens next.
            for path in sorted(entry.files, key=lambda p: p.suffix != ".json"):
                path.unlink(missing_ok=True)
    return stale


def _entry_of_group(key: str, files: list[Path]) -> CacheEntry:
    by_name = {path.name: path for path in files}
    array, record, scan = by_name.get(f"{key}.npy"), by_name.get(f"{key}.json"), by_name.get(f"{key}.scan.json")
    kind = "decoded" if array and record else "scan" if scan and not (array or record) else "incomplete"
    source, shape = "", None
    for candidate in (record, scan):
        if candidate is not None:
            try:
                source = json.loads(candidate.read_text()).get("source", "")
            except (OSError, ValueError, AttributeError):
                pass
    if array is not None:
        try:
            shape = tuple(np.load(array, mmap_mode="r").shape)
        except (OSError, ValueError):
            kind = "incomplete"
    stats = {path: path.stat() for path in files}
    used = record or scan
    last_used = stats[used].st_mtime if used else max(stat.st_mtime for stat in stats.values())
    return CacheEntry(key, kind, tuple(files), sum(s.st_size for s in stats.values()), last_used, source, shape)


def _entry_of_temporary(path: Path, stale: bool) -> CacheEntry:
    stat = path.stat()
    target = temporary_target(path) or path.name
    return CacheEntry(target.split(".")[0], "temporary" if stale else "in use", (path,), stat.st_size, stat.st_mtime)


@dataclass(frozen=True)
class _Decoder:
    """One file to a uint8 array or a :class:`BadFile` (picklable, for worker pools)."""

    size: tuple[int, int]
    channels: int

    def __call__(self, path: str | Path) -> np.ndarray | BadFile:
        try:
            return load_image(path, self.channels, self.size)
        except ImageDecodeError as error:
            return BadFile(error.path, error.reason, error.transient)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. under taskset or a container
    limit), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _mark_used(record_path: Path) -> None:
    """The record's modification time is the entry's last use (what pruning goes by)."""
    try:
        os.utime(record_path)
    except OSError:
        pass  # a read-only cache is still read


def _common_folder(paths: Sequence[str | Path]) -> str:
    try:
        return os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths]) if paths else ""
    except ValueError:  # different drives
        return ""


def _bad_from_record(record: dict) -> dict[int, BadFile]:
    return {int(index): BadFile(*item) for index, *item in record["bad"]}


def cache_key(paths: Sequence[str | Path], size: tuple[int, int], channels: int, decoder: str = "pil") -> str:
    """Hash of what decides the decoded pixels: files (path, size, mtime), target size,
    channels, decoder."""
    digest = hashlib.sha256(json.dumps([CACHE_FORMAT, list(size), int(channels), decoder]).encode())
    for path in paths:
        path = os.path.abspath(path)
        try:
            stat = os.stat(path)
            signature = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError as error:  # missing, unreadable or a symlink loop: decoding reports it
            signature = f"error:{error.errno}"
        digest.update(f"{path}\0{signature}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:32]
