"""Resident training data (data/resident.py) draws the same batches as the DataLoader path,
group by group and process by process, and trains to the same numbers."""

import json

import pytest
import torch
from conftest import compose_config
from torch.utils.data import DistributedSampler

from imgcls.config import ConfigError
from imgcls.data.arrays import ImageArrays
from imgcls.data.resident import ResidentBatches, StepGather, resident_device
from imgcls.data.training_order import TrainingOrder
from imgcls.training.run import build_datamodule, train


def _digits(*overrides):
    return build_datamodule(compose_config(*overrides))


def _epoch_batches(datamodule, epoch: int, steps: int):
    """Every step's (images, labels) of one epoch, in order, as the model would take them."""
    datamodule.fused_steps = steps
    loader = datamodule.train_dataloader()
    loader.sampler.set_epoch(epoch)
    batches = []
    for images, labels in loader:
        step_images = images.split(datamodule.batch_size)
        batches += list(zip(step_images, labels.split(datamodule.batch_size), strict=True))
    return loader, batches


@pytest.mark.parametrize("steps", [1, 3])
def test_resident_batches_equal_the_loader_batches(steps):
    resident, loader_path = _digits("data.resident=true"), _digits("data.resident=false")
    for epoch in (0, 1):
        loader, got = _epoch_batches(resident, epoch, steps)
        reference, expected = _epoch_batches(loader_path, epoch, steps)
        assert isinstance(loader, ResidentBatches) and isinstance(reference, torch.utils.data.DataLoader)
        assert len(loader) == len(reference)
        assert len(got) == len(expected) == -(-len(resident.splits.train) // resident.batch_size)
        for (images, labels), (want_images, want_labels) in zip(got, expected, strict=True):
            assert torch.equal(images, want_images) and torch.equal(labels, want_labels)
    first, _ = _epoch_batches(resident, 0, steps)
    assert not torch.equal(got[0][1], next(iter(first))[1][: len(got[0][1])])  # epochs reshuffle


def test_processes_take_disjoint_shares_of_an_epoch():
    data = ImageArrays(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1), torch.arange(10))
    seen = []
    for rank in (0, 1):
        sampler = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=3)
        seen.append(torch.cat([labels for _, labels in ResidentBatches(data, sampler, batch_size=2)]))
    assert sorted(torch.cat(seen).tolist()) == list(range(10))


def test_a_resumed_epoch_gives_the_rest_of_its_order():
    data = ImageArrays(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1), torch.arange(10))
    order = TrainingOrder(data, num_replicas=1, rank=0, seed=3)
    whole = torch.cat([labels for _, labels in ResidentBatches(data, order, batch_size=4)])
    order.resume_after(4)
    rest = torch.cat([labels for _, labels in ResidentBatches(data, order, batch_size=4)])
    assert torch.equal(rest, whole[4:])


def test_a_group_gathers_each_step_from_the_source():
    source = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1)
    group = StepGather(source, torch.tensor([5, 0, 3, 1]))
    assert len(group) == 4
    assert [chunk.flatten().tolist() for chunk in group.split(2)] == [[5, 0], [3, 1]]


def test_settings_that_need_a_loader_keep_it_or_are_refused():
    data = ImageArrays(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.zeros(4))
    cpu = torch.device("cpu")
    assert resident_device("auto", 0.5, data, cpu, 0, "random") == cpu
    assert resident_device(False, 0.5, data, cpu, 0, "random") is None
    assert resident_device("auto", 0.5, data, cpu, 2, "random") is None
    assert resident_device("auto", 0.5, data, cpu, 0, "weighted") is None
    with pytest.raises(ConfigError, match="data.sampler=weighted"):
        resident_device(True, 0.5, data, cpu, 0, "weighted")
    with pytest.raises(ConfigError, match="data.resident must be"):
        resident_device("yes", 0.5, data, cpu, 0, "random")


@pytest.mark.e2e
def test_resident_and_loader_runs_train_to_the_same_numbers(tmp_path):
    results = {}
    for resident in ("true", "false"):
        run_dir = tmp_path / resident
        cfg = compose_config(
            "model=logreg", "trainer.max_epochs=2", "fused_steps=4", f"data.resident={resident}", "report=false",
            output_dir=run_dir,
        )
        train(cfg)
        results[resident] = json.loads((run_dir / "metrics.json").read_text())
    assert results["true"]["resolved"]["resident_data"] is True
    assert results["false"]["resolved"]["resident_data"] is False
    assert results["true"]["test"] == results["false"]["test"]
    assert results["true"]["best"] == results["false"]["best"]
