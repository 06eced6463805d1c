"""The real config tree composes for every option of every group, and bad input fails clearly and early."""

import re

import pytest
import torch
from conftest import CONF_DIR, compose_config, run_train_py
from omegaconf import OmegaConf

from imgcls.config import SWEPT_KEYS_ENV, ConfigError, job_name, run_name
from imgcls.models.classifier import build_net
from imgcls.training.optimization import build_optimizer, build_scheduler
from imgcls.training.run import train
from imgcls.training.sweep import swept_keys

# Groups chosen on the command line as group=option (hydra/ and paths/ have one option each).
GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("hydra", "paths"))


def group_options():
    for group in GROUPS:
        for option in sorted((CONF_DIR / group).glob("*.yaml")):
            yield group, option.stem


@pytest.mark.e2e
@pytest.mark.parametrize(("group", "option"), list(group_options()))
def test_every_group_option_composes(group, option, tmp_path):
    # model=torchvision and model=timm are the generic ones: the user names the model.
    names = {("model", "torchvision"): "resnet18", ("model", "timm"): "resnet10t"}
    named = [f"model.name={names[group, option]}"] if (group, option) in names else []
    cfg = compose_config(f"{group}={option}", *named, output_dir=tmp_path)
    # Everything but values the user must supply resolves.
    missing = OmegaConf.missing_keys(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert resolved["seed"] == cfg.seed
    assert all(key.startswith("data.") for key in missing), missing


@pytest.mark.parametrize("option", [p.stem for p in sorted((CONF_DIR / "model").glob("*.yaml"))])
def test_baseline_nets_build_for_any_shape(option, tmp_path):
    cfg = compose_config(f"model={option}", output_dir=tmp_path)
    if not cfg.model.net._target_.startswith("imgcls.models.nets."):
        pytest.skip("pretrained-capable models are built in the transfer tests")
    net_config = OmegaConf.to_container(cfg.model.net, resolve=True)
    for shape in ([1, 8, 8], [3, 32, 32], [1, 80, 60], [4, 17, 23]):
        net = build_net(net_config, shape, num_classes=7)
        assert net(torch.rand(2, *shape)).shape == (2, 7)


@pytest.mark.parametrize("optimizer", [p.stem for p in sorted((CONF_DIR / "optimizer").glob("*.yaml"))])
@pytest.mark.parametrize("scheduler", [p.stem for p in sorted((CONF_DIR / "scheduler").glob("*.yaml"))])
def test_optimizers_and_schedules_build(optimizer, scheduler, tmp_path):
    cfg = compose_config(f"optimizer={optimizer}", f"scheduler={scheduler}", output_dir=tmp_path)
    params = [torch.nn.Parameter(torch.zeros(3))]
    opt = build_optimizer(OmegaConf.to_container(cfg.optimizer, resolve=True), params)
    assert opt.param_groups[0]["lr"] == pytest.approx(cfg.optimizer.lr)
    schedule = build_scheduler(
        OmegaConf.to_container(cfg.scheduler, resolve=True), opt, 100, monitor="val/acc"
    )
    assert (schedule is None) == (scheduler == "none")


def test_warmup_ramps_then_cosine_ends_at_eta_min(tmp_path):
    cfg = compose_config(
        "scheduler=cosine", "scheduler.warmup=2", "optimizer=sgd", "optimizer.lr=1.0", output_dir=tmp_path
    )
    opt = build_optimizer(
        OmegaConf.to_container(cfg.optimizer, resolve=True), [torch.nn.Parameter(torch.zeros(1))]
    )
    schedule = build_scheduler(
        OmegaConf.to_container(cfg.scheduler, resolve=True), opt, 10, monitor="val/acc"
    )
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule["scheduler"].step()
    assert lrs[0] == pytest.approx(0.1)  # warmup_start_factor
    assert max(lrs) == pytest.approx(1.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)  # T_max filled with 10 - 2


def test_missing_required_value_fails_before_data_is_loaded(tmp_path, monkeypatch):
    cfg = compose_config("optimizer.lr=???", output_dir=tmp_path)

    def no_data(*args, **kwargs):
        raise AssertionError("data was loaded before the config was checked")

    monkeypatch.setattr("imgcls.data.digits.DigitsDataModule.load_splits", no_data)
    with pytest.raises(ConfigError, match=r"optimizer\.lr"):
        train(cfg)


@pytest.mark.parametrize(
    ("override", "valid"),
    [
        ("model=resnet_9000", ["cnn", "mlp", "logreg"]),
        # The same message path for every group: one subprocess in the default suite.
        pytest.param("data=imagenet_22k", ["digits"], marks=pytest.mark.slow),
        pytest.param("optimizer=lion", ["adam", "sgd"], marks=pytest.mark.slow),
    ],
)
def test_unknown_names_list_the_valid_ones(override, valid, tmp_path):
    result = run_train_py(override, log_dir=tmp_path, check=False, timeout=120)
    assert result.returncode != 0
    message = result.stderr
    group = override.split("=")[0]
    assert f"Could not find '{group}/{override.split('=')[1]}'" in message
    assert all(f"\t{name}\n" in message for name in valid), message
    assert not (tmp_path / "train").exists()  # nothing ran


def test_run_names_are_readable_and_path_safe():
    assert run_name("") == "default"
    assert run_name("model-cnn+optimizer.lr-0.01") == "model-cnn+optimizer.lr-0.01"
    assert run_name("data.image_size-[96,96]") == "data.image_size-_96_96_"
    assert "/" not in run_name("data.root=/home/me/images")
    assert len(run_name("x=" + "a" * 500)) <= 120
    # Cut names end with a hash of the whole name, so names that differ at their ends differ.
    assert run_name("x=" + "a" * 500) != run_name("x=" + "a" * 499 + "b")


DIRNAME = OmegaConf.create({"kv_sep": "-", "item_sep": "+", "exclude_keys": ["ckpt_path"]})


def test_sweep_jobs_are_named_by_what_the_sweep_varies(monkeypatch):
    task = ["data=digits", "optimizer.lr=0.0001", "trainer.max_epochs=2", "model=cnn", "ckpt_path=x.ckpt"]
    monkeypatch.setenv(SWEPT_KEYS_ENV, "optimizer.lr")
    assert job_name(3, task, DIRNAME) == "003_optimizer.lr-0.0001"
    monkeypatch.setenv(SWEPT_KEYS_ENV, "model,optimizer.lr")
    assert job_name(3, task, DIRNAME) == "003_model-cnn+optimizer.lr-0.0001"
    monkeypatch.delenv(SWEPT_KEYS_ENV)  # a -m run that sweeps nothing: every override
    assert job_name(0, task, DIRNAME) == "000_data-digits+model-cnn+optimizer.lr-0.0001+trainer.max_epochs-2"


def test_a_long_sweep_job_name_keeps_the_swept_value_first_and_ends_with_a_hash(monkeypatch):
    monkeypatch.setenv(SWEPT_KEYS_ENV, "data.root")
    shared = [f"+extra.setting_{i}=value_{i}" for i in range(20)]
    names = [job_name(1, [*shared, f"data.root=/data/{'deep/' * 30}{leaf}"], DIRNAME) for leaf in "ab"]
    assert all(name.startswith("001_data.root-") and len(name) <= 4 + 120 for name in names)
    assert names[0] != names[1] and "extra.setting" not in names[0]


def test_the_swept_keys_are_the_sweep_overrides_and_the_sweepers_params():
    config = OmegaConf.create(
        {
            "hydra": {
                "overrides": {"task": ["optimizer.lr=0.1,0.01", "model=cnn", "seed=range(3)", "data=digits"]},
                "sweeper": {"params": {"optimizer.weight_decay": "interval(0, 0.1)"}},
            }
        }
    )
    assert swept_keys(config) == ["optimizer.lr", "optimizer.weight_decay", "seed"]


def test_experiment_recipes_set_their_task_name(tmp_path):
    for recipe in sorted((CONF_DIR / "experiment").glob("*.yaml")):
        cfg = compose_config(f"experiment={recipe.stem}", output_dir=tmp_path)
        assert cfg.task_name != "train", f"{recipe.name} should name its task (outputs/<task_name>/...)"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs='abc' must be an integer"),
        ("seed=abc", "seed='abc' must be an integer"),
        ("optimizer.lr=abc", "optimizer.lr='abc' must be a number"),
        ("optimizer.lr=0", "optimizer.lr=0 must be > 0"),
        ("data.batch_size=0", "data.batch_size=0 must be >= 1"),
        ("data.num_workers=-1", "data.num_workers=-1 must be >= 0"),
        ("scheduler=cosine scheduler.warmup=-2", "scheduler.warmup=-2 must be >= 0"),
        ("data=folder data.root=x data.image_size=[0,0]", "data.image_size=[0, 0] must be [H, W]"),
        ("data=folder data.root=x data.channels=2", "data.channels=2 must be 1 (grayscale) or 3"),
        ("data=folder data.root=x data.decode_workers=0", "data.decode_workers=0 must be auto or an integer >= 1"),
        ("monitor.metric=val/accuracy", "monitor.metric='val/accuracy' is not a validation metric"),
        ("monitor.metric=val/kappa", "monitor.metric=val/kappa is not logged for this data"),
    ],
)
def test_bad_values_name_their_key_before_any_data_is_read(override, message, tmp_path):
    cfg = compose_config(*override.split(), output_dir=tmp_path)
    with pytest.raises(ConfigError, match=re.escape(message)):
        train(cfg)


@pytest.mark.e2e
def test_a_config_error_prints_one_line_without_a_traceback(tmp_path):
    result = run_train_py("trainer.max_epochs=abc", log_dir=tmp_path, check=False)
    assert result.returncode == 1
    assert "Config error: trainer.max_epochs='abc' must be an integer" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("overrides", "monitor"),
    [
        ([], ("val/acc", "max")),
        (["data=retinopathy"], ("val/kappa", "max")),  # ordered grades
        (["experiment=retinopathy_resnet18"], ("val/kappa", "max")),
        (["data=retinopathy", "monitor=acc"], ("val/acc", "max")),  # the user's choice wins
        (["data=retinopathy", "monitor.metric=val/f1"], ("val/f1", "max")),
        (["monitor=loss"], ("val/loss", "min")),
    ],
)
def test_the_monitored_metric_follows_the_data_unless_set(overrides, monitor):
    cfg = compose_config(*overrides)
    assert (cfg.monitor.metric, cfg.monitor.mode) == monitor
    assert cfg.callbacks.model_checkpoint.monitor == monitor[0]


def test_printed_config_keeps_long_values_whole_when_redirected(capsys):
    # Redirected to a file, rich's console is 80 columns wide: a run directory's path must
    # wrap, not be cut (a cut path names a directory that does not exist).
    from omegaconf import OmegaConf

    from imgcls.config import print_config_tree

    path = "/tmp/outputs/digits_cnn/runs/2026-12-02_00-21-58-100852-31797_experiment-digits_cnn"
    print_config_tree(OmegaConf.create({"paths": {"output_dir": path}}))
    printed = "".join(line.strip(" │└├─") for line in capsys.readouterr().out.splitlines())
    assert path in printed
