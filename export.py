"""Export a checkpoint to ONNX: ``python export.py ckpt_path=... [output=model.onnx]``.

The exported model is run with onnxruntime and its outputs compared with PyTorch's.
See conf/export.yaml for the options.
"""

from imgcls.commands.export import main

if __name__ == "__main__":
    main()
