"""ONNX export of a trained checkpoint, run with onnxruntime and compared with PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CONF_DIR
from digits_run import best_checkpoint, trained_digits_run
from hydra import compose, initialize_config_dir

from imgcls.inference.loading import load_classifier, load_inference_model
from imgcls.inference.onnx_export import export_checkpoint, onnx_logits, read_metadata

# End-to-end runs: the default suite runs them, `make test-unit` skips them.
pytestmark = pytest.mark.e2e



def test_exported_model_gives_the_checkpoints_outputs(tmp_path_factory, tmp_path):
    from imgcls.data.digits import DigitsDataModule

    ckpt = best_checkpoint(trained_digits_run(tmp_path_factory.getbasetemp() / "digits_run"))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("export", overrides=[f"ckpt_path='{ckpt}'", f"output={tmp_path / 'digits.onnx'}"])
    path = export_checkpoint(cfg)

    # Real test digits, in a batch size the export never saw.
    datamodule = DigitsDataModule()
    datamodule.setup("test")
    images = datamodule.test_sets["test"].images[:33].float() / 255
    with torch.inference_mode():
        expected = load_classifier(ckpt)(images).numpy()
    got = onnx_logits(path, images.numpy())
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (got.argmax(1) == expected.argmax(1)).all()

    # The file says how to feed it and read it, and predict.py runs it like the checkpoint.
    metadata = read_metadata(path)
    assert metadata["class_names"] == datamodule.class_names and metadata["input_shape"] == [1, 8, 8]
    assert metadata["input_range"] == [0.0, 1.0] and len(metadata["mean"]) == len(metadata["std"]) == 1
    from PIL import Image

    from imgcls.inference.predict import predict_files

    for index, image in enumerate(datamodule.test_sets["test"].images[:5].numpy()):
        Image.fromarray(image[0]).save(tmp_path / f"{index}.png")
    files = sorted(tmp_path.glob("*.png"))
    from_onnx = predict_files(load_inference_model(str(path)), files)
    from_ckpt = predict_files(load_inference_model(str(ckpt)), files)
    assert list(from_onnx["label_1"]) == list(from_ckpt["label_1"])
    np.testing.assert_allclose(from_onnx["prob_1"], from_ckpt["prob_1"], atol=1e-4)
