"""Using trained or pretrained models: evaluation of checkpoints, prediction, export."""
