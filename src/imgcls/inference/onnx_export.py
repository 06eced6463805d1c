"""ONNX export of a trained checkpoint, checked by running the exported file with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

INPUT_NAME, OUTPUT_NAME = "images", "logits"
# The file's metadata_props (JSON values): what a program needs to feed it and read its
# output without the checkpoint. Normalization is applied inside the model; it is recorded
# so that a reader knows which statistics it bakes in.
METADATA_KEYS = ("imgcls.class_names", "imgcls.input_shape", "imgcls.input_range", "imgcls.mean", "imgcls.std")
# The checkpoint's temperature (training/temperature.py): calibrated probabilities are
# softmax(logits / temperature). Files exported before it had none: 1.
TEMPERATURE_KEY = "imgcls.temperature"


def export_onnx(
    model: torch.nn.Module, input_shape, path: str | Path, opset: int = 17, dynamo: bool = False
) -> Path:
    """Write ``model`` (float [0, 1] images ``[N, *input_shape]`` in, logits out) with a
    dynamic batch size. Normalization is inside the model, so the ONNX file takes the same
    input as ``predict.py`` gives the checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    sample = torch.rand(2, *input_shape)
    torch.onnx.export(
        model,
        (sample,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        opset_version=opset,
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        dynamo=dynamo,
    )
    return path


def write_metadata(path: str | Path, class_names, input_shape, mean, std, temperature: float = 1.0) -> None:
    """Store class names, input shape ``[C, H, W]``, input range, normalization and the
    temperature in the ONNX file's ``metadata_props``; the file is replaced whole."""
    import json
    import os

    import onnx

    from imgcls.temp_files import temporary_path

    path = Path(path)
    model = onnx.load(str(path))
    values = [list(class_names), [int(v) for v in input_shape], [0.0, 1.0], list(map(float, mean)), list(map(float, std))]
    props = {key: json.dumps(value) for key, value in zip(METADATA_KEYS, values, strict=True)}
    onnx.helper.set_model_props(model, {**props, TEMPERATURE_KEY: json.dumps(float(temperature))})
    temporary = temporary_path(path)
    try:
        onnx.save(model, str(temporary))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_metadata(path: str | Path) -> dict:
    """An imgcls ONNX file's metadata (``class_names``, ``input_shape``, ...); a file exported
    without it is an error that says how to get it."""
    import json

    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    missing = [key for key in METADATA_KEYS if key not in props]
    if missing:
        raise ValueError(f"{path}: no {', '.join(missing)} in its metadata; export it again with export.py")
    metadata = {key.removeprefix("imgcls."): json.loads(props[key]) for key in METADATA_KEYS}
    metadata["temperature"] = float(json.loads(props.get(TEMPERATURE_KEY, "1.0")))
    return metadata


def onnx_logits(path: str | Path, images: np.ndarray) -> np.ndarray:
    """Run the exported model with onnxruntime on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: images.astype(np.float32)})[0]


def max_output_difference(path: str | Path, model: torch.nn.Module, images: torch.Tensor) -> float:
    """Largest absolute difference between the ONNX model's and the PyTorch model's logits."""
    with torch.inference_mode():
        expected = model.eval().cpu()(images).numpy()
    return float(np.abs(onnx_logits(path, images.numpy()) - expected).max())


def export_checkpoint(cfg) -> Path:
    """``python export.py``: export, then check on random images of a few batch sizes."""
    from imgcls.inference.loading import load_classifier

    ckpt = Path(cfg.ckpt_path)
    model = load_classifier(ckpt, trust=cfg.get("trust_checkpoint", False))
    input_shape = list(model.hparams.input_shape)
    output = Path(cfg.output) if cfg.output else ckpt.with_suffix(".onnx")
    export_onnx(model, input_shape, output, cfg.opset, cfg.dynamo)
    mean, std = model.mean.flatten().tolist(), model.std.flatten().tolist()
    write_metadata(output, model.class_names, input_shape, mean, std, float(model.temperature))
    if cfg.check:
        generator = torch.Generator().manual_seed(0)
        for batch in (1, 7):
            images = torch.rand(batch, *input_shape, generator=generator)
            difference = max_output_difference(output, model, images)
            if difference > cfg.atol:
                raise RuntimeError(
                    f"{output}: ONNX logits differ from PyTorch's by {difference:.2e} > atol={cfg.atol}"
                )
        print(f"Checked with onnxruntime: max |ONNX - PyTorch| = {difference:.2e} (atol {cfg.atol})")
    print(
        f"ONNX model: {output} (input '{INPUT_NAME}': float [N, {', '.join(map(str, input_shape))}] in [0, 1])"
    )
    return output
