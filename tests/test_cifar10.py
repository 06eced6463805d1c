"""data=cifar10: the standard pickle layout, re-packs, bad files, missing files, downloads."""

from __future__ import annotations

import io
import json
import os
import pickle
import socket
import tarfile

import numpy as np
import pytest
import torch
from cifar_fixture import CLASS_NAMES, cifar_images, write_batch, write_cifar10
from conftest import compose_config, run_train_py
from hydra.utils import instantiate
from local_http import Response, serve

from imgcls.data.cifar10 import CIFAR10_URL, Cifar10DataModule, CifarFormatError


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root, per_batch=200)
    return root


def load(data_dir, **kwargs) -> Cifar10DataModule:
    datamodule = Cifar10DataModule(data_dir=str(data_dir), **{"val_size": 100, **kwargs})
    datamodule.prepare_data()  # downloads, as Lightning calls it before setup
    datamodule.setup("fit")
    return datamodule


def test_loads_the_pickles_exactly(cifar_root):
    datamodule = load(cifar_root)
    splits = datamodule.splits
    assert (len(splits.train), len(splits.val), len(splits.test)) == (900, 100, 200)
    assert datamodule.class_names == CLASS_NAMES
    assert datamodule.input_shape == [3, 32, 32]
    assert splits.train.images.dtype == torch.uint8
    # The test batch is the last 200 fixture images, channel-major as CIFAR stores them.
    data, labels = cifar_images(1200, seed=0)
    assert torch.equal(splits.test.images, torch.from_numpy(data[1000:].reshape(-1, 3, 32, 32)))
    assert torch.equal(splits.test.labels, torch.from_numpy(labels[1000:]))
    # train + val is exactly the five training batches, with no image in both.
    merged = torch.cat([splits.train.images, splits.val.images]).reshape(1000, -1)
    assert sorted(map(bytes, merged.numpy())) == sorted(map(bytes, data[:1000]))


def test_split_is_seeded_and_stratified(cifar_root):
    first, again, other = load(cifar_root), load(cifar_root), load(cifar_root, split_seed=7)
    assert torch.equal(first.splits.val.images, again.splits.val.images)
    assert not torch.equal(first.splits.val.images, other.splits.val.images)
    val_counts = torch.bincount(first.splits.val.labels, minlength=10)
    train_counts = torch.bincount(first.splits.train.labels, minlength=10)
    expected = (train_counts + val_counts) / 10
    assert (val_counts - expected).abs().max() <= 1  # 10% of every class


def test_val_size_as_a_fraction(cifar_root):
    assert len(load(cifar_root, val_size=0.25).splits.val) == 250


@pytest.mark.parametrize("val_size", [0, 1000, 5000])
def test_val_size_must_leave_training_images(cifar_root, val_size):
    with pytest.raises(ValueError, match="data.val_size"):
        load(cifar_root, val_size=val_size)


def test_a_repack_with_other_keys_and_protocol_loads(tmp_path, cifar_root):
    folder = write_cifar10(tmp_path, per_batch=200, protocol=pickle.HIGHEST_PROTOCOL, bytes_keys=False)
    repacked = load(folder)  # data_dir may also be the batches folder itself
    original = load(cifar_root)
    assert repacked.class_names == CLASS_NAMES
    assert torch.equal(repacked.splits.train.images, original.splits.train.images)


def test_default_config_is_seed_002s_cifar10(cifar_root):
    cfg = compose_config("data=cifar10", f"data.data_dir={cifar_root}", "data.val_size=100")
    assert compose_config("data=cifar10").data.val_size == 5000
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    assert datamodule.mean == pytest.approx([0.4914, 0.4822, 0.4465])
    assert datamodule.std == pytest.approx([0.2470, 0.2435, 0.2616])
    augment = datamodule.augment
    assert (augment.crop_padding, augment.hflip, augment.vflip, augment.rotation) == (4, True, False, 0)



def _truncate(folder):
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:5000])
    return "data_batch_3", "truncated"


def _wrong_shape(folder):
    data, labels = cifar_images(200, seed=1)
    write_batch(folder / "data_batch_2", data[:, :1024], labels)
    return "data_batch_2", r"uint8 \[N, 3072\], found uint8 \[200, 1024\]"


def _float_data(folder):
    data, labels = cifar_images(200, seed=1)
    write_batch(folder / "data_batch_2", data.astype(np.float32), labels)
    return "data_batch_2", "found float32"


def _label_out_of_range(folder):
    data, labels = cifar_images(200, seed=1)
    labels[17] = 10
    write_batch(folder / "test_batch", data, labels)
    return "test_batch", r"\[0, 9\].*found 10 at index 17"


def _label_count_mismatch(folder):
    data, labels = cifar_images(200, seed=1)
    write_batch(folder / "data_batch_5", data, labels[:-1])
    return "data_batch_5", "must be 200 integers"


def _not_a_pickle(folder):
    (folder / "data_batch_1").write_text("these are not the images you are looking for")
    return "data_batch_1", "not a readable CIFAR pickle"


def _meta_without_names(folder):
    with open(folder / "batches.meta", "wb") as file:
        pickle.dump({b"num_vis": 3072}, file, protocol=2)
    return "batches.meta", "label_names"


def _code_in_pickle(folder):
    with open(folder / "data_batch_4", "wb") as file:
        pickle.dump(os.getcwd, file)  # a pickle that would call a function when loaded
    return "data_batch_4", "refusing to load posix.getcwd"


@pytest.mark.parametrize(
    "damage",
    [
        _truncate,
        _wrong_shape,
        _float_data,
        _label_out_of_range,
        _label_count_mismatch,
        _not_a_pickle,
        _meta_without_names,
        _code_in_pickle,
    ],
)
def test_bad_files_are_named(tmp_path, damage):
    folder = write_cifar10(tmp_path, per_batch=200)
    name, reason = damage(folder)
    with pytest.raises(CifarFormatError, match=rf"{name}.*{reason}") as error:
        load(tmp_path)
    assert str(folder / name) in str(error.value)


def test_missing_files_say_what_to_put_where(tmp_path):
    folder = write_cifar10(tmp_path, per_batch=200)
    (folder / "test_batch").unlink()
    (folder / "data_batch_2").unlink()
    with pytest.raises(FileNotFoundError) as error:
        load(tmp_path)
    message = str(error.value)
    assert "lacks data_batch_2, test_batch." in message
    assert CIFAR10_URL in message and f"extract it into {tmp_path}" in message
    assert "data.download=true" in message


def test_empty_data_dir_offline(tmp_path):
    with pytest.raises(FileNotFoundError, match="lacks data_batch_1, .*batches.meta"):
        load(tmp_path / "nothing_here")


def test_download_failure_is_explained(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on: the connection is refused at once
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/cifar-10-python.tar.gz"
    with pytest.raises(FileNotFoundError, match=f"could not download CIFAR-10 from {url}"):
        load(tmp_path, download=True, url=url)


def test_download_extracts_an_archive_without_official_checksum(tmp_path, cifar_root):
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(cifar_root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    routes = {"/cifar-10-python.tar.gz": Response(archive.getvalue())}
    with serve(routes) as (base, hits):
        datamodule = load(tmp_path / "data", download=True, url=f"{base}/cifar-10-python.tar.gz")
        requests = dict(hits)
        again = load(tmp_path / "data", download=True, url=f"{base}/cifar-10-python.tar.gz")
    assert requests and hits == requests  # the second run finds the files and downloads nothing
    assert datamodule.class_names == again.class_names == CLASS_NAMES
    assert torch.equal(datamodule.splits.test.images, load(cifar_root).splits.test.images)


@pytest.mark.e2e
def test_train_py_end_to_end(tmp_path, cifar_root):
    run_train_py(
        "data=cifar10",
        f"data.data_dir={cifar_root}",
        "data.val_size=100",
        "model=cnn",
        "trainer.max_epochs=1",
        log_dir=tmp_path / "logs",
    )
    (metrics_file,) = (tmp_path / "logs").rglob("metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert metrics["status"] == "ok" and metrics["epochs_trained"] == 1
    assert 0.0 <= metrics["test"]["test/acc"] <= 1.0
    config = (metrics_file.parent / ".hydra" / "config.yaml").read_text()
    assert "crop_padding: 4" in config and "Cifar10DataModule" in config
