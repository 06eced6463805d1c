"""Predict image files: ``python predict.py ckpt_path=... input=<file|folder|csv> [topk=5] [output=preds.csv]``.

With ``model_name=mobilenet_v2 weights=IMAGENET1K_V1`` instead of a checkpoint it predicts
ImageNet classes. See conf/predict.yaml for the options.
"""

from imgcls.commands.predict import main

if __name__ == "__main__":
    main()
