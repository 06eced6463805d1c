"""data.decoder: choosing nvJPEG, and the batched torchvision path (run here on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest
from image_fixtures import exif_rotated_jpeg, write_bad_file
from PIL import Image

from imgcls.config import ConfigError
from imgcls.data.batch_jpeg import NVJPEG_TOLERANCE, BatchJpegDecoder, choose_decoder
from imgcls.data.decode_cache import BadFile, DecodeCache, _Decoder
from imgcls.data.image_io import load_image

SIZE = (48, 64)


@pytest.mark.parametrize(
    ("setting", "accelerator", "cuda", "chosen"),
    [
        ("auto", "auto", True, "nvjpeg"),
        ("auto", "gpu", True, "nvjpeg"),
        ("auto", "cuda", True, "nvjpeg"),
        ("auto", "cpu", True, "pil"),  # training on the CPU of a GPU machine
        ("auto", "auto", False, "pil"),
        ("pil", "gpu", True, "pil"),
        ("nvjpeg", "gpu", True, "nvjpeg"),
    ],
)
def test_the_decoder_follows_the_training_device(setting, accelerator, cuda, chosen):
    assert choose_decoder(setting, accelerator, cuda_available=lambda: cuda) == chosen


def test_nvjpeg_without_cuda_and_unknown_decoders_are_config_errors():
    with pytest.raises(ConfigError, match="data.decoder=nvjpeg needs training on a CUDA GPU"):
        choose_decoder("nvjpeg", "auto", cuda_available=lambda: False)
    with pytest.raises(ConfigError, match="data.decoder='turbo' must be one of auto, pil, nvjpeg"):
        choose_decoder("turbo", "gpu", cuda_available=lambda: True)


@pytest.fixture
def files(tmp_path):
    from skimage import data

    paths = []
    for name in ("chelsea", "coffee", "astronaut"):
        paths.append(tmp_path / f"{name}.jpg")
        Image.fromarray(getattr(data, name)()).save(paths[-1], quality=90)
    paths.append(exif_rotated_jpeg(tmp_path / "rotated.jpg", data.astronaut()[:, :400], orientation=6))
    Image.fromarray(data.coffee()).save(tmp_path / "coffee.png")
    Image.fromarray(data.chelsea()).convert("CMYK").save(tmp_path / "cmyk.jpg")
    paths += [tmp_path / "coffee.png", tmp_path / "cmyk.jpg"]
    return [str(path) for path in paths]


def _assert_agrees(paths, results, channels):
    for path, result in zip(paths, results, strict=True):
        expected = load_image(path, channels, SIZE).astype(int)
        assert result.shape == expected.shape, path
        difference = np.abs(result.astype(int) - expected)
        assert difference.mean() <= NVJPEG_TOLERANCE["mean"], path
        assert difference.max() <= NVJPEG_TOLERANCE["max"], path


@pytest.mark.parametrize("channels", [3, 1])
def test_batched_decode_agrees_with_pil_and_leaves_other_files_to_it(files, channels, monkeypatch):
    fallback_files = []

    def fallback(path):
        fallback_files.append(path)
        return _Decoder(SIZE, channels)(path)

    decoder = BatchJpegDecoder(SIZE, channels, fallback, device="cpu")
    results = list(decoder.decode(files))
    _assert_agrees(files, results, channels)
    for path, result in zip(files, results, strict=True):  # torchvision on the CPU: as PIL's full decode
        if path in fallback_files:
            continue
        full = load_image(path, channels, SIZE, reduced=False).astype(int)
        assert (
            np.abs(result.astype(int) - full).mean() <= 1.0 and np.abs(result.astype(int) - full).max() <= 8
        )
    # EXIF rotation: decode_jpeg applies it only on the CPU, so PIL decodes those everywhere.
    assert sorted(fallback_files) == sorted(
        f for f in files if f.endswith(("coffee.png", "cmyk.jpg", "rotated.jpg"))
    )


def test_a_bad_jpeg_in_a_batch_is_named_and_the_others_still_decode(files, tmp_path):
    bad = str(write_bad_file(tmp_path / "broken.jpg", "truncated"))
    paths = [files[0], bad, files[1]]
    results = list(BatchJpegDecoder(SIZE, 3, _Decoder(SIZE, 3), device="cpu").decode(paths))
    assert isinstance(results[1], BadFile) and results[1].path == bad
    _assert_agrees([files[0], files[1]], [results[0], results[2]], 3)


def test_the_cache_built_with_nvjpeg_is_its_own_entry(files, tmp_path):
    pil = DecodeCache(tmp_path / "cache", progress=False)
    batched = DecodeCache(tmp_path / "cache", progress=False, decoder="nvjpeg", device="cpu")
    assert pil.entry_path(files, SIZE, 3) != batched.entry_path(files, SIZE, 3)
    _assert_agrees(files, batched.load(files, SIZE, 3), 3)


@pytest.mark.gpu
def test_nvjpeg_on_cuda_agrees_with_pil(files, tmp_path):
    cache = DecodeCache(tmp_path / "cache", progress=False, decoder="nvjpeg", device="cuda")
    _assert_agrees(files, cache.load(files, SIZE, 3), 3)
