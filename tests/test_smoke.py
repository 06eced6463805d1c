import json

from imgcls.training.run import train


def test_cnn_learns_digits_in_process(config_factory):
    cfg = config_factory("model=cnn", "trainer.max_epochs=8", "optimizer.lr=3e-3")
    best = train(cfg)
    summary = json.loads(
        (
            cfg.paths.output_dir and __import__("pathlib").Path(cfg.paths.output_dir) / "metrics.json"
        ).read_text()
    )
    assert best > 0.9
    assert summary["test"]["test/acc"] > 0.9
