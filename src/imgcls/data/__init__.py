"""Data modules: each turns a dataset on disk into uint8 image tensors, class names and splits."""
