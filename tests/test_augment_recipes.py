"""RandAugment, TrivialAugmentWide, RandomResizedCrop, colour jitter, RandomErasing, MixUp and
CutMix draw per sample, on uint8 device batches, with torchvision's arithmetic."""

import math

import pytest
import torch
from omegaconf import OmegaConf
from torchvision.transforms.v2 import functional as TF

from imgcls.config import ConfigError, check_augment
from imgcls.data.augment import BatchAugment, StepBatches, color_jitter, random_erasing, random_resized_crop
from imgcls.data.auto_augment import OPS, PerSampleAutoAugment, apply_ops, magnitude_table
from imgcls.data.mixing import BatchMixing


def _photo(size: int = 24, seed: int = 0) -> torch.Tensor:
    """A smooth colour image [3, size, size], uint8 (a blurred noise field)."""
    noise = torch.randint(0, 256, (3, size, size), generator=torch.Generator().manual_seed(seed)).float()
    return TF.gaussian_blur(noise, [5, 5]).round().to(torch.uint8)


def _torchvision_op(name: str, image: torch.Tensor, m: float) -> torch.Tensor:
    """What torchvision's RandAugment does for one op at magnitude ``m`` (its own code path)."""
    affine = dict(angle=0.0, translate=[0, 0], scale=1.0, shear=[0.0, 0.0])
    shear = math.degrees(math.atan(m))
    return {
        "Identity": lambda: image,
        "ShearX": lambda: TF.affine(image, **{**affine, "shear": [shear, 0.0]}, center=[0, 0]),
        "ShearY": lambda: TF.affine(image, **{**affine, "shear": [0.0, shear]}, center=[0, 0]),
        "TranslateX": lambda: TF.affine(image, **{**affine, "translate": [int(m), 0]}),
        "TranslateY": lambda: TF.affine(image, **{**affine, "translate": [0, int(m)]}),
        "Rotate": lambda: TF.rotate(image, angle=m),
        "Brightness": lambda: TF.adjust_brightness(image, 1.0 + m),
        "Color": lambda: TF.adjust_saturation(image, 1.0 + m),
        "Contrast": lambda: TF.adjust_contrast(image, 1.0 + m),
        "Sharpness": lambda: TF.adjust_sharpness(image, 1.0 + m),
        "Posterize": lambda: TF.posterize(image, int(m)),
        "Solarize": lambda: TF.solarize(image, 255.0 * m),
        "AutoContrast": lambda: TF.autocontrast(image),
        "Equalize": lambda: TF.equalize(image),
    }[name]()


@pytest.mark.parametrize("policy", ["randaugment", "trivialaugment"])
def test_each_op_matches_torchvision_at_its_magnitudes(policy):
    image = _photo()
    table = magnitude_table(policy, 24, 24)
    for index, name in enumerate(OPS):
        for magnitude in {float(table[index, b]) for b in (0, 9, 20, 30)}:
            signs = (1, -1) if name in ("ShearX", "Rotate", "Brightness", "TranslateY", "Contrast") else (1,)
            for m in (sign * magnitude for sign in signs):
                ours = apply_ops(image[None], torch.tensor([index]), torch.tensor([m]))[0]
                difference = (ours.int() - _torchvision_op(name, image, m).int()).abs()
                # uint8 rounding differs by one level at most; nearest-pixel ties (shears) may
                # pick the neighbouring pixel in a few places.
                assert (difference > 1).float().mean() < 0.05, (name, m)


def test_randaugment_draws_a_different_op_per_sample():
    """A batch of one image repeated: one op for the whole batch (torchvision's v2 on a batch
    tensor) would give at most 2 different outputs (the sign); each output is one of the
    candidate ops applied to the image, and many ops occur."""
    torch.manual_seed(0)
    image = _photo()
    batch = image.expand(64, -1, -1, -1).contiguous()
    out = PerSampleAutoAugment("randaugment", num_ops=1, magnitude=9)(batch)
    table = magnitude_table("randaugment", 24, 24)
    candidates = {
        (name, sign): _torchvision_op(name, image, sign * float(table[index, 9])).float()
        for index, name in enumerate(OPS)
        for sign in (1, -1)
        if name != "Posterize" or sign == 1
    }
    found = set()
    for sample in out.float():
        errors = {key: (sample - candidate).abs().mean().item() for key, candidate in candidates.items()}
        best = min(errors, key=errors.get)
        assert errors[best] < 2.0, best
        found.add(best[0])
    assert len(found) >= 8, found
    assert len({bytes(sample.flatten().tolist()) for sample in out}) > 16


def test_trivialaugment_draws_its_magnitude_per_sample():
    torch.manual_seed(0)
    batch = _photo().expand(128, -1, -1, -1).contiguous()
    out = BatchAugment(trivialaugment=True)(batch)
    assert out.dtype == torch.float32 and out.shape == batch.shape
    distinct = {bytes((sample * 255).round().to(torch.uint8).flatten().tolist()) for sample in out}
    assert len(distinct) > 60  # 14 ops x 2 signs would give 28 with one magnitude per batch


def test_random_resized_crop_draws_boxes_per_sample_and_the_full_box_is_the_identity():
    torch.manual_seed(0)
    batch = _photo(32).expand(32, -1, -1, -1).contiguous()
    assert torch.equal(random_resized_crop(batch, scale=(1.0, 1.0), ratio=(1.0, 1.0)), batch)
    cropped = random_resized_crop(batch)
    assert cropped.dtype == torch.uint8 and cropped.shape == batch.shape
    assert len({bytes(c.flatten().tolist()) for c in cropped}) == 32
    # A quarter-area crop at a known place: torchvision's resized_crop of that box.
    one = random_resized_crop(batch[:1], scale=(0.25, 0.25), ratio=(1.0, 1.0))[0]
    boxes = [
        TF.resized_crop(batch[0], top, left, 16, 16, [32, 32], antialias=False)
        for top in range(17)
        for left in range(17)
    ]
    assert min((one.float() - box.float()).abs().mean().item() for box in boxes) < 2.0


def test_color_jitter_draws_factors_per_sample():
    torch.manual_seed(0)
    batch = _photo().expand(32, -1, -1, -1).contiguous()
    out = color_jitter(batch, brightness=0.4)
    factors = out.float().sum((1, 2, 3)) / batch.float().sum((1, 2, 3))
    assert factors.min() > 0.55 and factors.max() < 1.45 and factors.std() > 0.1
    # Each sample is torchvision's adjust_brightness of the image at its own factor.
    for sample, factor in zip(out[:4], factors[:4], strict=True):
        reference = TF.adjust_brightness(batch[0], float(factor))
        assert (sample.int() - reference.int()).abs().float().mean() < 1.0


def test_hue_jitter_turns_each_sample_by_its_own_shift():
    torch.manual_seed(0)
    batch = _photo().expand(6, -1, -1, -1).contiguous()
    out = color_jitter(batch, hue=0.3)
    shifts = []
    for sample in out:
        errors = {
            h: (sample.float() - TF.adjust_hue(batch[0], h).float()).abs().mean().item()
            for h in torch.linspace(-0.3, 0.3, 121).tolist()
        }
        best = min(errors, key=errors.get)
        assert errors[best] < 1.0  # torchvision's adjust_hue at one shift in range
        shifts.append(best)
    assert len({round(h, 2) for h in shifts}) >= 5


def test_random_erasing_erases_one_box_per_chosen_sample():
    torch.manual_seed(0)
    images = torch.rand(200, 3, 16, 16) * 0.5 + 0.5  # never 0 before erasing
    erased = random_erasing(images, p=0.5)
    zero = erased[:, 0] == 0
    chosen = zero.flatten(1).any(1)
    assert 70 < chosen.sum() < 130
    boxes = set()
    for mask in zero[chosen]:
        rows, cols = mask.any(1).nonzero().squeeze(1), mask.any(0).nonzero().squeeze(1)
        top, left, h, w = rows[0], cols[0], len(rows), len(cols)
        assert mask.sum() == h * w and mask[top : top + h, left : left + w].all()  # one rectangle
        assert 0.02 * 256 - 8 <= h * w <= 0.33 * 256 + 8
        boxes.add((int(top), int(left), h, w))
    assert len(boxes) > 50
    assert torch.equal(erased[~chosen], images[~chosen])


def _labelled_batch(n=64, classes=10):
    """Each image a constant plane whose value names its sample, so mixes can be read back."""
    values = torch.arange(n, dtype=torch.float32) / n
    images = values.view(n, 1, 1, 1).expand(n, 3, 16, 16).contiguous()
    return images, torch.arange(n) % classes, values


def test_mixup_pairs_each_sample_with_its_own_partner_and_weight():
    torch.manual_seed(0)
    images, labels, _ = _labelled_batch()
    mixed, targets = BatchMixing(10, mixup_alpha=0.4)(images, labels)
    assert torch.allclose(targets.sum(1), torch.ones(64))
    weight = targets.gather(1, labels.view(-1, 1)).squeeze(1)  # the own label's share (or all of it)
    assert weight.unique().numel() > 30  # one Beta draw per sample
    # Each image is weight * own + (1 - weight) * some partner; the partners differ.
    flat = mixed[:, 0, 0, 0]
    partners = set()
    for i in range(64):
        if targets[i].max() < 1:  # really mixed with another class
            candidates = [
                j
                for j in range(64)
                if torch.isclose(
                    flat[i], weight[i] * images[i, 0, 0, 0] + (1 - weight[i]) * images[j, 0, 0, 0], atol=1e-5
                )
            ]
            assert candidates, i
            partners.add(candidates[0])
    assert len(partners) > 30


def test_cutmix_pastes_a_box_per_sample_and_weights_targets_by_its_area():
    torch.manual_seed(0)
    images, labels, values = _labelled_batch()
    mixed, targets = BatchMixing(10, cutmix_alpha=1.0)(images, labels)
    assert torch.allclose(targets.sum(1), torch.ones(64))
    boxes = set()
    for i in range(64):
        pasted = mixed[i, 0] != values[i]
        own_share = 1 - pasted.float().mean()
        if pasted.any():
            assert len(mixed[i, 0][pasted].unique()) == 1  # from one partner
            rows, cols = pasted.any(1).nonzero().squeeze(1), pasted.any(0).nonzero().squeeze(1)
            assert pasted.sum() == len(rows) * len(cols)  # a rectangle
            boxes.add((int(rows[0]), int(cols[0]), len(rows), len(cols)))
        assert torch.isclose(targets[i, labels[i]], own_share, atol=1e-5) or targets[i, labels[i]] == 1
    assert len(boxes) > 30


def test_mixing_probability_and_switch():
    torch.manual_seed(0)
    images, labels, values = _labelled_batch(400, classes=400)
    mixed, targets = BatchMixing(400, mixup_alpha=1.0, cutmix_alpha=1.0, mixup_prob=0.5)(images, labels)
    untouched = (mixed == images).flatten(1).all(1)
    assert 150 < untouched.sum() < 250
    assert torch.equal(targets[untouched].argmax(1), labels[untouched])
    # Among the mixed: a CutMix image holds two values only, a MixUp image one blended value.
    cut = torch.tensor([len(m[0].unique()) == 2 for m in mixed])
    assert 60 < cut.sum() < 140


def test_grouped_steps_mix_each_steps_batch_within_itself():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (48, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(48)  # a class per sample: the targets name the partners
    steps = list(StepBatches(images, labels, BatchAugment(), 16, BatchMixing(48, mixup_alpha=1.0)))
    assert len(steps) == 3
    for step, (step_images, targets) in enumerate(steps):
        assert step_images.shape == (16, 3, 8, 8) and targets.shape == (16, 48)
        assert torch.allclose(targets.sum(1), torch.ones(16))
        used = targets.sum(0).nonzero().squeeze(1)
        assert used.min() >= 16 * step and used.max() < 16 * (step + 1)


def test_a_steps_augmented_batch_is_freed_once_the_step_lets_go_of_it():
    import weakref

    images = torch.randint(0, 256, (48, 3, 8, 8), dtype=torch.uint8)
    steps = iter(StepBatches(images, torch.arange(48), BatchAugment(crop_padding=2), 16))
    step_images, _ = next(steps)
    seen = weakref.ref(step_images)
    del step_images  # the group's iterator waits for the next step: it must not hold this batch
    assert seen() is None
    assert next(steps)[0].shape == (16, 3, 8, 8)


def test_training_metrics_take_the_original_labels_and_the_loss_the_soft_targets(monkeypatch):
    from imgcls.models.classifier import ImageClassifier

    model = ImageClassifier(
        net={"_target_": "imgcls.models.nets.LogisticRegression", "_partial_": True},
        num_classes=4, class_names=list("abcd"), input_shape=[3, 8, 8], mean=[0.5] * 3, std=[0.2] * 3,
        optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
    )  # fmt: skip
    seen = {}
    monkeypatch.setattr(model, "_logs_step_loss", lambda step: False)
    monkeypatch.setattr(
        model.train_metrics, "update", lambda logits, labels: seen.setdefault("labels", labels)
    )
    torch.manual_seed(0)
    images, labels = torch.rand(8, 3, 8, 8), torch.tensor([0, 1, 2, 3] * 2)
    mixed, targets = BatchMixing(4, mixup_alpha=1.0)(images, labels)
    loss = model.training_step((mixed, labels, targets), 0)
    assert torch.equal(seen["labels"], labels)
    logits = model(mixed)
    assert torch.isclose(loss, torch.nn.functional.cross_entropy(logits, targets))
    assert not torch.isclose(loss, torch.nn.functional.cross_entropy(logits, labels))


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ({"mixup_alpha": -0.1}, "data.augment.mixup_alpha"),
        ({"cutmix_alpha": "x"}, "data.augment.cutmix_alpha"),
        ({"mixup_prob": 1.5}, "data.augment.mixup_prob"),
        ({"mixup_switch_prob": -1}, "data.augment.mixup_switch_prob"),
        ({"random_erasing": 2}, "data.augment.random_erasing"),
        ({"randaugment": {"num_ops": 2, "magnitude": 31}}, "data.augment.randaugment.magnitude"),
        ({"randaugment": {"ops": 2}}, "data.augment.randaugment.ops"),
        ({"random_resized_crop": {"scale": [0.9, 0.1]}}, "data.augment.random_resized_crop.scale"),
        ({"color_jitter": {"hue": 0.6}}, "data.augment.color_jitter.hue"),
        ({"color_jitter": {"gamma": 0.1}}, "data.augment.color_jitter.gamma"),
        ({"trivialaugment": True, "randaugment": {"num_ops": 1}}, "data.augment.trivialaugment"),
        ({"mixup": 0.2}, "data.augment.mixup"),
    ],
)
def test_bad_augment_values_name_their_key(setting, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_augment(OmegaConf.create(setting))


def test_the_shipped_augment_configs_pass_the_checks():
    from conftest import compose_config

    for data in ("digits", "cifar10", "photo_crops", "folder", "retinopathy"):
        check_augment(compose_config(f"data={data}").data.augment)


@pytest.mark.e2e
def test_grouped_steps_train_like_plain_steps_with_the_recipes_on(tmp_path):
    """Each step's batch is augmented and mixed as the step takes it: the same draws, in the
    same order, as one Lightning step per batch, so the same weights."""
    from test_fused_steps import _run

    common = (
        "data=photo_crops", "data.train_size=512", "data.val_size=128", "data.test_size=128", "report=false",
        "trainer.max_epochs=2", "data.augment.trivialaugment=true", "data.augment.random_erasing=0.25",
        "data.augment.mixup_alpha=0.4", "data.augment.cutmix_alpha=1.0",
    )  # fmt: skip
    _, _, plain = _run(tmp_path / "plain", "fused_steps=1", *common)
    _, _, grouped = _run(tmp_path / "grouped", "fused_steps=4", *common)
    assert grouped["global_step"] == plain["global_step"] == 2 * 512 // 128
    for key, state in plain["state_dict"].items():
        assert torch.allclose(grouped["state_dict"][key].float(), state.float(), atol=1e-5), key
