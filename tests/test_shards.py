"""LitData shards (data/shards.py): written from any data module, streamed for training, exact on resume."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest
import torch

from imgcls.data.arrays import ImageArrays
from imgcls.data.datamodule import DatasetSplits, ImageDataModule
from imgcls.data.shards import ShardDataModule, write_shards

TRAIN = 60


class Numbered(ImageDataModule):
    """Images whose first pixel is their position in the split (+100 for val, +200 for test)."""

    def load_splits(self) -> DatasetSplits:
        def split(count, offset):
            images = torch.zeros((count, 1, 4, 4), dtype=torch.uint8)
            images[:, 0, 0, 0] = torch.arange(count) + offset
            return ImageArrays(images, torch.arange(count) % 3)

        return DatasetSplits(split(TRAIN, 0), split(9, 100), split(12, 200), class_names=["a", "b", "c"])


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("shards")
    write_shards(Numbered(), str(output), chunk_bytes="256B")  # several chunks: a share per rank
    return output


def first_pixels(batches) -> list[int]:
    return [int(value) for images, _ in batches for value in images[:, 0, 0, 0]]


def test_shards_describe_the_data_and_hold_every_split(shards):
    source = Numbered()
    source.setup()
    streamed = ShardDataModule(str(shards), batch_size=8)
    streamed.setup("fit")
    assert streamed.class_names == ["a", "b", "c"] and streamed.input_shape == [1, 4, 4]
    assert streamed.mean == pytest.approx(source.mean) and streamed.std == pytest.approx(source.std)
    assert streamed.class_counts == [20, 20, 20]
    assert streamed.fingerprint()["splits"] == source.fingerprint()["splits"]
    for name in ("val", "test"):  # read into memory, in their written order
        assert torch.equal(streamed.split(name).images, source.split(name).images), name
        assert torch.equal(streamed.split(name).labels, source.split(name).labels), name
    assert json.loads((shards / "dataset.json").read_text())["samples"] == {
        "train": TRAIN,
        "val": 9,
        "test": 12,
    }
    assert len(list((shards / "train").glob("chunk-*.bin"))) > 2


def test_the_stream_shuffles_every_epoch_from_the_seed(shards):
    torch.manual_seed(5)
    loader = ShardDataModule(str(shards), batch_size=8).train_dataloader()
    epoch_1, epoch_2 = first_pixels(loader), first_pixels(loader)
    assert sorted(epoch_1) == sorted(epoch_2) == list(range(TRAIN))  # every sample once an epoch
    assert epoch_1 != epoch_2 and epoch_1 != list(range(TRAIN))
    torch.manual_seed(5)
    assert first_pixels(ShardDataModule(str(shards), batch_size=8).train_dataloader()) == epoch_1
    images, labels = next(iter(loader))
    assert images.dtype == torch.uint8 and images.shape == (8, 1, 4, 4) and labels.dtype == torch.long


def test_the_loader_state_continues_mid_epoch(shards):
    torch.manual_seed(5)
    loader = ShardDataModule(str(shards), batch_size=8).train_dataloader()
    batches = iter(loader)
    seen = first_pixels([next(batches) for _ in range(3)])
    state = loader.state_dict()
    rest = first_pixels(batches)
    torch.manual_seed(5)
    resumed = ShardDataModule(str(shards), batch_size=8).train_dataloader()
    resumed.load_state_dict(state)
    assert first_pixels(resumed) == rest and sorted(seen + rest) == list(range(TRAIN))


def test_a_folder_without_shards_is_named(tmp_path):
    with pytest.raises(ValueError, match=f"data.input_dir={tmp_path}: no imgcls shards"):
        ShardDataModule(str(tmp_path)).setup("fit")


class Opaque:
    """A sample LitData can only pickle."""


def _opaque(_):
    return {"value": Opaque()}


def test_shards_of_pickled_samples_are_refused_unread(tmp_path):
    from litdata import optimize

    optimize(fn=_opaque, inputs=[0], output_dir=str(tmp_path / "description"), chunk_bytes="1MB",
             num_workers=1, verbose=False, start_method="fork")  # fmt: skip
    assert "pickle" in (tmp_path / "description" / "index.json").read_text()
    with pytest.raises(ValueError, match="pickled samples, which imgcls does not load"):
        ShardDataModule(str(tmp_path)).setup("fit")


def _read_share(rank: int, world: int, shards: str, port: int, results) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(5)
        results.put((rank, first_pixels(ShardDataModule(shards, batch_size=4).train_dataloader())))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_each_stream_a_disjoint_share(shards):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = multiprocessing.get_context("fork")  # the shards and imports are already here
    results = context.Queue()
    processes = [context.Process(target=_read_share, args=(r, 2, str(shards), port, results)) for r in (0, 1)]
    for process in processes:
        process.start()
    shares = dict(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert not set(shares[0]) & set(shares[1])
    assert len(shares[0]) == len(shares[1]) > 0  # equal batches on both ranks (LitData's drop_last)
    assert len(set(shares[0]) | set(shares[1])) > TRAIN - 2 * 4


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_ends_with_the_uninterrupted_runs_weights_bit_for_bit(tmp_path):
    from conftest import run_train_py
    from test_resume import assert_ends_where, only_run_dir

    from imgcls.data.digits import DigitsDataModule
    from imgcls.training.checkpointing import EXIT_SIGTERM

    write_shards(DigitsDataModule(), str(tmp_path / "shards"))
    run = (
        "data=stream", f"data.input_dir={tmp_path / 'shards'}", "model=cnn", "model.net.dropout=0.2",
        "data.augment.crop_padding=1", "data.batch_size=32", "fused_steps=1", "trainer.max_epochs=2",
        "seed=7", "logger=csv",
    )  # fmt: skip
    sigterm = "+callbacks.sigterm={_target_:interrupt_helpers.SigtermAtBatch,epoch:1,batch:5}"
    env = {"PYTHONPATH": f"{Path(__file__).parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run_train_py(*run, log_dir=tmp_path / "reference", env=env)
    killed = run_train_py(*run, sigterm, log_dir=tmp_path / "killed", check=False, env=env)
    assert killed.returncode == EXIT_SIGTERM, killed.stdout[-2000:] + killed.stderr[-4000:]
    run_dir = only_run_dir(tmp_path / "killed")
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    (stream_state,) = saved["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert stream_state["num_samples_yielded"] == 6 * 32, "the loader's position is in the checkpoint"

    # data=stream: the run's own (run_train_py adds data=digits to arguments without one).
    run_train_py(f"resume={run_dir}", "data=stream", log_dir=tmp_path / "killed", env=env)
    # The resumed run ends where the uninterrupted one does, bit for bit.
    assert_ends_where(run_dir, only_run_dir(tmp_path / "reference"), keys=("status", "epochs_trained"))
    resumed = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert resumed["global_step"] == 2 * 37  # 1,167 training digits in batches of 32
