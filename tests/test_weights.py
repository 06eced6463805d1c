"""imgcls.models.weights: weights names, torchvision's cache path, the offline cache first,
downloads with their own timeout, hash check and atomic rename, and one file for training,
prediction and comparison."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torchvision
from local_http import Response, serve

from imgcls.inference.loading import load_inference_model
from imgcls.models.torchvision_net import TorchvisionNet
from imgcls.models.weights import (
    PretrainedWeightsMissing,
    cache_dir,
    ensure_weights_file,
    hash_prefix,
    resolve_weights,
    weights_file,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_network(monkeypatch):
    """Every connection attempt fails at once (and is counted), as on an offline machine."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise ConnectionRefusedError("network disabled by the test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture
def no_default_timeout_changes(monkeypatch):
    """Fails the test if anything sets the process-wide socket timeout."""
    calls = []
    monkeypatch.setattr(socket, "setdefaulttimeout", lambda value: calls.append(value))
    yield calls
    assert calls == [], f"socket.setdefaulttimeout was called with {calls}"


def closed_port_url(file_name: str) -> str:
    with socket.socket() as sock:  # a port nothing listens on: the connection is refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{file_name}"


def cached_files() -> list[str]:
    return sorted(p.name for p in cache_dir().iterdir()) if cache_dir().exists() else []


def marked_resnet18(value: float) -> dict:
    state = torchvision.models.resnet18().state_dict()
    state["conv1.weight"].fill_(value)
    return state


# --- names ------------------------------------------------------------------------------------
def test_weights_names_resolve_and_a_wrong_one_lists_the_choices():
    choices = torchvision.models.ResNet50_Weights
    assert resolve_weights("resnet50", "IMAGENET1K_V1") is choices.IMAGENET1K_V1
    assert resolve_weights("resnet50", "ResNet50_Weights.IMAGENET1K_V2") is choices.IMAGENET1K_V2
    assert resolve_weights("resnet50", "DEFAULT") is choices.DEFAULT is choices.IMAGENET1K_V2
    assert resolve_weights("resnet50", pretrained=True) is choices.DEFAULT
    assert resolve_weights("resnet50") is None
    with pytest.raises(ValueError, match="choose one of: IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT"):
        resolve_weights("resnet50", "IMAGENET1K_V9")
    with pytest.raises(ValueError, match=r"unknown torchvision model 'resnet51'.*imgcls\.models\.list"):
        resolve_weights("resnet51", pretrained=True)
    with pytest.raises(ValueError, match="unknown torchvision model 'fasterrcnn_resnet50_fpn'"):
        resolve_weights("fasterrcnn_resnet50_fpn")  # a detection model, not a classifier


def test_hash_prefix_follows_torch_hub():
    assert hash_prefix("resnet50-11ad3fa6.pth") == "11ad3fa6"
    assert hash_prefix("efficientnet_b0_rwightman-7f5810bc.pth") == "7f5810bc"
    assert hash_prefix("my_mobilenet_copy.pth") is None


# --- the cache path ----------------------------------------------------------------------------
def test_the_cache_path_is_the_file_torchvision_itself_reads(torch_home, no_network):
    weights = resolve_weights("resnet18", "IMAGENET1K_V1")
    expected = Path(torch.hub.get_dir()) / "checkpoints" / "resnet18-f37072fd.pth"
    assert weights_file(weights) == expected == torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"

    # torchvision's own loader finds the file there: no download is attempted.
    expected.parent.mkdir(parents=True)
    torch.save(marked_resnet18(0.25), expected)
    state = weights.get_state_dict(progress=False)
    assert torch.all(state["conv1.weight"] == 0.25) and no_network == []


def test_the_cache_path_follows_torch_hub_set_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", torch.hub._hub_dir)  # restored after the test
    torch.hub.set_dir(str(tmp_path / "elsewhere"))
    weights = resolve_weights("alexnet", pretrained=True)
    assert weights_file(weights) == tmp_path / "elsewhere" / "checkpoints" / "alexnet-owt-7be5be79.pth"


def test_the_real_mobilenet_file_sits_at_its_cache_path_and_matches_its_hash(mobilenet_torch_home):
    path = weights_file(resolve_weights("mobilenet_v2", "IMAGENET1K_V1"))
    assert path == mobilenet_torch_home / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest.startswith(hash_prefix(path.name))


# --- offline -------------------------------------------------------------------------------------
def test_a_cached_file_is_used_without_touching_the_network(torch_home, no_network):
    weights = resolve_weights("resnet18", "IMAGENET1K_V1")
    weights_file(weights).parent.mkdir(parents=True)
    weights_file(weights).write_bytes(b"anything: the cache is trusted")
    assert ensure_weights_file(weights) == weights_file(weights)
    assert no_network == []


def test_a_missing_file_offline_fails_fast_naming_the_file_the_folder_and_the_url(
    torch_home, monkeypatch, no_default_timeout_changes
):
    weights = resolve_weights("resnet18", pretrained=True)
    url = closed_port_url("x-abcdef12.pth")
    monkeypatch.setattr(weights.value, "url", url)
    before = socket.getdefaulttimeout()
    start = time.perf_counter()
    with pytest.raises(PretrainedWeightsMissing) as error:
        ensure_weights_file(weights)
    assert time.perf_counter() - start < 10
    message = str(error.value)
    folder = torch_home / "hub" / "checkpoints"
    assert f"Put the file x-abcdef12.pth into {folder}" in message and url in message
    assert socket.getdefaulttimeout() == before
    assert cached_files() == []  # no partial file left behind


def test_a_stalled_server_times_out_per_request_not_process_wide(
    torch_home, monkeypatch, no_default_timeout_changes
):
    weights = resolve_weights("resnet18", pretrained=True)
    with serve({"/slow-abcdef12.pth": Response(b"late", delay=2.0)}) as (base, hits):
        monkeypatch.setattr(weights.value, "url", f"{base}/slow-abcdef12.pth")
        start = time.perf_counter()
        with pytest.raises(PretrainedWeightsMissing, match="timed out"):
            ensure_weights_file(weights, timeout=0.3)
        elapsed = time.perf_counter() - start
    assert elapsed < 1.8 and hits == {"/slow-abcdef12.pth": 1}
    assert socket.getdefaulttimeout() is None and cached_files() == []


def test_an_http_error_is_a_missing_weights_error(torch_home, monkeypatch):
    weights = resolve_weights("resnet18", pretrained=True)
    with serve({}) as (base, _):
        monkeypatch.setattr(weights.value, "url", f"{base}/gone-abcdef12.pth")
        with pytest.raises(PretrainedWeightsMissing, match="HTTP Error 404"):
            ensure_weights_file(weights)
    assert cached_files() == []


# --- downloads -----------------------------------------------------------------------------------
def test_a_download_lands_atomically_at_the_cache_path_once(
    torch_home, monkeypatch, no_default_timeout_changes
):
    body = os.urandom(300_000)
    name = f"tiny-{hashlib.sha256(body).hexdigest()[:8]}.pth"
    weights = resolve_weights("resnet18", pretrained=True)
    renames = []
    real_replace = os.replace

    def spy_replace(source, target):
        # The complete file is renamed into place from next to it; the target never exists half-written.
        renames.append((Path(source), Path(target), Path(target).exists(), Path(source).read_bytes() == body))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", spy_replace)
    with serve({f"/{name}": Response(body)}) as (base, hits):
        monkeypatch.setattr(weights.value, "url", f"{base}/{name}")
        path = ensure_weights_file(weights)
        again = ensure_weights_file(weights)  # cached now: no second request
    assert path == again == weights_file(weights) == torch_home / "hub" / "checkpoints" / name
    assert path.read_bytes() == body and hits == {f"/{name}": 1}
    ((source, target, target_existed, complete),) = renames
    assert target == path and source.parent == path.parent and source != path
    assert not target_existed and complete
    assert cached_files() == [name]


def test_a_download_with_the_wrong_hash_prefix_is_refused(torch_home, monkeypatch):
    body = b"not the weights the name promises" * 100
    actual = hashlib.sha256(body).hexdigest()
    wrong = ("0" if actual[0] != "0" else "1") + actual[1:8]
    weights = resolve_weights("resnet18", pretrained=True)
    with serve({f"/tiny-{wrong}.pth": Response(body)}) as (base, _):
        monkeypatch.setattr(weights.value, "url", f"{base}/tiny-{wrong}.pth")
        with pytest.raises(PretrainedWeightsMissing, match=f"SHA-256 {actual}.*starting with {wrong}"):
            ensure_weights_file(weights)
    assert cached_files() == []  # neither the target nor a partial file


# --- one file for training, prediction and comparison ------------------------------------------
def test_training_and_prediction_read_the_same_cached_file_and_fail_alike_without_it(
    torch_home, no_network, no_default_timeout_changes
):
    weights = resolve_weights("resnet18", "IMAGENET1K_V1")
    weights_file(weights).parent.mkdir(parents=True)
    torch.save(marked_resnet18(0.125), weights_file(weights))

    trained = TorchvisionNet([3, 32, 32], 4, "resnet18", weights="IMAGENET1K_V1")  # what train.py builds
    predicting = load_inference_model("resnet18:IMAGENET1K_V1")  # predict.py and the comparison
    assert torch.all(trained.model.conv1.weight == 0.125)
    assert torch.all(predicting.net.conv1.weight == 0.125)
    assert predicting.weights_file == weights_file(weights)
    assert no_network == []

    weights_file(weights).unlink()
    with pytest.raises(PretrainedWeightsMissing) as training_error:
        TorchvisionNet([3, 32, 32], 4, "resnet18", weights="IMAGENET1K_V1")
    with pytest.raises(PretrainedWeightsMissing) as prediction_error:
        load_inference_model("resnet18:IMAGENET1K_V1")
    assert str(training_error.value) == str(prediction_error.value)
    message = str(prediction_error.value)
    assert f"Put the file resnet18-f37072fd.pth into {torch_home / 'hub' / 'checkpoints'}" in message
    assert weights.url in message


def test_real_mobilenet_weights_predict_offline_from_the_cache(mobilenet_torch_home, no_network):
    model = load_inference_model("mobilenet_v2:IMAGENET1K_V1")
    assert model.weights_file == mobilenet_torch_home / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    assert len(model.class_names) == 1000 and no_network == []


def test_the_weights_module_and_the_listing_import_without_torch():
    code = "import sys, imgcls.models.weights, imgcls.models.list; print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]"
