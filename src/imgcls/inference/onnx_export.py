"""ONNX export of a trained checkpoint, checked by running the exported file with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

INPUT_NAME, OUTPUT_NAME = "images", "logits"


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
