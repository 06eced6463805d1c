"""What happens around the model during a run: optimizers, callbacks, the run itself."""
