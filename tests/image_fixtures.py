"""On-disk dataset fixtures in each exact layout, generated from real offline images.

* CASIA: Chinese characters rendered from an installed CJK font with random affine
  distortion, stroke width and noise, into ``root/{Train,Test}/<character>/*.png``.
* Retinopathy: variations of ``skimage.data.retina()`` (a real fundus photo) as JPEGs,
  with the seed's one-column CSVs (with or without a header) or a Kaggle table.
* Folders: real photos (skimage's cat and coffee cup) saved in every mode and suffix case.
* Bad files: one writer per kind of bad input.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
# Characters of seed 004's list; distinct shapes so a small CNN can tell them apart.
CHARACTERS = ["人", "口", "木", "火", "水", "山"]


def set_up_data(module_class, tmp_path: Path, **settings):
    """A file data module, set up, with its cache and reports under ``tmp_path``."""
    data = module_class(cache_dir=tmp_path / "cache", report_dir=tmp_path / "run", progress=False, **settings)
    data.setup("fit")
    return data


# --- CASIA ------------------------------------------------------------------------------
def render_character(char: str, rng: np.random.Generator) -> Image.Image:
    """One "handwritten" grayscale character: dark ink on light paper, varying size."""
    height, width = int(rng.integers(70, 110)), int(rng.integers(50, 90))
    canvas = Image.new("L", (width, height), 255)
    font = ImageFont.truetype(str(CJK_FONT), int(min(height, width) * rng.uniform(0.6, 0.9)))
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), char, font=font)
    x = (width - (right - left)) / 2 - left + rng.uniform(-4, 4)
    y = (height - (bottom - top)) / 2 - top + rng.uniform(-4, 4)
    draw.text((x, y), char, fill=int(rng.integers(0, 60)), font=font, stroke_width=int(rng.integers(0, 3)))
    # Random affine: rotation, shear and scale about the centre, as handwriting varies.
    angle, shear, scale = np.radians(rng.uniform(-12, 12)), rng.uniform(-0.2, 0.2), rng.uniform(0.85, 1.15)
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    a, b, d, e = cos, sin + shear, -sin, cos  # output pixel -> input pixel, about the centre
    cx, cy = width / 2, height / 2
    matrix = (a, b, cx - a * cx - b * cy, d, e, cy - d * cx - e * cy)
    canvas = canvas.transform(
        canvas.size, Image.Transform.AFFINE, matrix, Image.Resampling.BILINEAR, fillcolor=255
    )
    if rng.random() < 0.5:
        canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    noisy = np.asarray(canvas, dtype=np.float64) + rng.normal(0, 12, (height, width))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), mode="L")


def make_character_folders(root: Path, characters, per_class: int, seed: int) -> Path:
    """``root/<character>/<n>.png`` for each character."""
    rng = np.random.default_rng(seed)
    for char in characters:
        folder = root / char
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            render_character(char, rng).save(folder / f"{i:04d}.png")
    return root


def make_casia(root: Path, characters=CHARACTERS, train_per_class=30, test_per_class=10, seed=0) -> Path:
    """The CASIA layout: ``root/Train/<character>/*.png`` and ``root/Test/<character>/*.png``."""
    make_character_folders(root / "Train", characters, train_per_class, seed)
    make_character_folders(root / "Test", characters, test_per_class, seed + 1)
    return root


# --- retinopathy ------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _retina(size: int) -> np.ndarray:
    from skimage import data

    return np.asarray(Image.fromarray(data.retina()).resize((size, size), Image.Resampling.BILINEAR))


def fundus_image(grade: int, rng: np.random.Generator, size: int = 48) -> Image.Image:
    """The real fundus photo, rotated, re-lit, with ``grade``-many bright "lesion" spots."""
    image = Image.fromarray(_retina(size)).rotate(float(rng.uniform(0, 360)))
    pixels = np.asarray(image, dtype=np.float64) * rng.uniform(0.8, 1.2)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(3 * grade):
        x, y = rng.uniform(0.3, 0.7, 2) * size
        draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=(255, 240, 120))
    return image


def make_retinopathy(
    root: Path, grades: list[int], test_grades: list[int], header: bool, seed: int = 0, size: int = 48
) -> dict[str, list]:
    """Seed 003's layout: ``root/<id>.jpeg`` and ``{train,test}_{img,label}.csv`` (one column each).

    Returns the ids and grades written, in file order.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, split_grades in (("train", grades), ("test", test_grades)):
        ids = [f"{split}{i:04d}_{'left' if i % 2 else 'right'}" for i in range(len(split_grades))]
        for image_id, grade in zip(ids, split_grades, strict=True):
            fundus_image(grade, rng, size).save(root / f"{image_id}.jpeg", quality=90)
        write_column(root / f"{split}_img.csv", ids, "image" if header else None)
        write_column(root / f"{split}_label.csv", split_grades, "level" if header else None)
        written[split] = (ids, list(split_grades))
    return written


def write_column(path: Path, values, header: str | None) -> None:
    lines = ([header] if header else []) + [str(v) for v in values]
    path.write_text("\n".join(lines) + "\n")


def make_kaggle_table(root: Path, ids, grades, name: str = "trainLabels.csv") -> Path:
    lines = ["image,level"] + [f"{i},{g}" for i, g in zip(ids, grades, strict=True)]
    (root / name).write_text("\n".join(lines) + "\n")
    return root / name


# --- user folders -----------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _photo(name: str, size: int) -> np.ndarray:
    from skimage import data

    return np.asarray(Image.fromarray(getattr(data, name)()).resize((size, size), Image.Resampling.BILINEAR))


def photo_variant(name: str, rng: np.random.Generator, size: int = 40) -> Image.Image:
    """A real photo, randomly cropped, flipped and re-lit."""
    photo = _photo(name, size + 8)
    y, x = rng.integers(0, 9, 2)
    crop = photo[y : y + size, x : x + size].astype(np.float64) * rng.uniform(0.8, 1.2)
    image = Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8))
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image


def save_in_mode(image: Image.Image, path: Path, mode: str) -> Path:
    """Save ``image`` converted to ``mode``; ``I;16`` is a 16-bit grayscale PNG."""
    if mode == "I;16":
        values = np.asarray(image.convert("L"), dtype=np.uint16) * 257
        Image.fromarray(values).save(path)  # uint16 arrays save as 16-bit PNGs
    elif mode == "P":
        image.convert("RGB").quantize(64).save(path)
    else:
        image.convert(mode).save(path)
    return path


# (suffix, mode) pairs covering every accepted suffix in mixed case and every input mode.
FOLDER_FORMATS = [
    (".jpg", "RGB"),
    (".JPG", "L"),
    (".jpeg", "CMYK"),
    (".png", "RGBA"),
    (".PNG", "P"),
    (".png", "I;16"),
    (".bmp", "RGB"),
    (".gif", "P"),
    (".webp", "RGB"),
    (".tif", "RGB"),
    (".TIF", "CMYK"),
]


def make_class_folders(root: Path, per_class: int = 12, seed: int = 0, size: int = 40) -> Path:
    """``root/cat/*`` and ``root/coffee/*`` from two real photos, every suffix and mode,
    plus hidden entries that must be ignored."""
    rng = np.random.default_rng(seed)
    for label, photo in (("cat", "chelsea"), ("coffee", "coffee")):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            suffix, mode = FOLDER_FORMATS[i % len(FOLDER_FORMATS)]
            save_in_mode(photo_variant(photo, rng, size), folder / f"{label}_{i:03d}{suffix}", mode)
        (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
        (folder / f"._{label}_000.jpg").write_bytes(b"\0\5\26\7 macOS resource fork")
    (root / ".ipynb_checkpoints").mkdir(exist_ok=True)
    photo_variant("chelsea", rng, size).save(root / ".ipynb_checkpoints" / "x-checkpoint.png")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return root


def exif_rotated_jpeg(path: Path, array: np.ndarray, orientation: int = 6) -> Path:
    """A JPEG whose pixels are stored unrotated, with an EXIF Orientation tag to apply."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(array).save(path, exif=exif.tobytes(), quality=95)
    return path


# --- bad files --------------------------------------------------------------------------
def write_bad_file(path: Path, kind: str) -> Path:
    """A file named like an image that is not a good one: corrupt, truncated, empty,
    not_image or bomb (a PNG whose header claims more pixels than PIL's limit)."""
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "not_image":
        path.write_text("this is a text file, not an image\n")
    elif kind == "corrupt":
        path.write_bytes(b"\xff\xd8\xff\xe0" + np.random.default_rng(0).bytes(2000))
    elif kind == "truncated":
        buffer = io.BytesIO()
        Image.fromarray(_photo("chelsea", 64)).save(buffer, format="PNG")
        path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    elif kind == "bomb":
        path.write_bytes(_png_header_only(width=20_000, height=20_000))
    else:
        raise ValueError(f"unknown bad-file kind {kind!r}")
    return path


BAD_KINDS = ("empty", "not_image", "corrupt", "truncated", "bomb")


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny valid-looking grayscale PNG that declares ``width x height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )
