"""The zoo's trainers and defaults: quality bars on the digits defaults (recomputed here, and
recorded in the manifests), determinism, resuming a killed `robbench zoo train`, and the
classifier-augmentation trainer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from robbench.core.seeding import generator
from robbench.data import load_dataset
from robbench.models.generative import from_diffusion, to_diffusion, tweedie
from robbench.zoo import ZooStore, get_recipe, load_model, recipes, train_recipe
from robbench.zoo.train import accuracy


@pytest.fixture(scope="module")
def digits_test():  # type: ignore[no-untyped-def]
    return load_dataset("digits").load("test")


def _manifest(name: str, zoo_dir: Path) -> dict:  # type: ignore[type-arg]
    return ZooStore(zoo_dir).manifest(get_recipe(name).key)


@pytest.mark.parametrize("name", ["digits-cnn", "digits-cnn-adv", "digits-cnn-pursamere"])
def test_digits_classifiers_reach_95_percent(name: str, zoo_dir: Path, digits_test) -> None:  # type: ignore[no-untyped-def]
    model = load_model(name, zoo_dir=zoo_dir, quiet=True)
    acc = accuracy(model, digits_test.x, digits_test.y)
    assert acc >= 0.95, f"{name}: test accuracy {acc:.3f}"
    assert _manifest(name, zoo_dir)["metrics"]["test_accuracy"] == pytest.approx(acc)


def test_pursamere_augmented_classifier_records_purified_accuracy(zoo_dir: Path) -> None:
    load_model("digits-cnn-pursamere", zoo_dir=zoo_dir, quiet=True)
    m = _manifest("digits-cnn-pursamere", zoo_dir)
    assert m["train"]["defense"] == "pursamere" and m["metrics"]["purified_test_accuracy"] >= 0.95


def test_adversarial_classifier_records_clean_and_pgd_accuracy(zoo_dir: Path) -> None:
    load_model("digits-cnn-adv", zoo_dir=zoo_dir, quiet=True)
    m = _manifest("digits-cnn-adv", zoo_dir)
    pgd = m["metrics"]["pgd20_accuracy_linf-0.1"]
    assert m["train"]["eps"] == 0.1 and m["train"]["norm"] == "linf"
    # adversarial training buys robustness the standard classifier lacks
    assert 0.5 < pgd <= m["metrics"]["test_accuracy"]


def test_digits_score_model_denoises_at_least_twice_better_at_sigma_0_1(zoo_dir: Path, digits_test) -> None:  # type: ignore[no-untyped-def]
    model = load_model("digits-score", zoo_dir=zoo_dir, quiet=True)
    x = digits_test.x
    noise = torch.randn(x.shape, generator=generator(12345))  # not the draws the manifest used
    noisy = x + 0.1 * noise
    with torch.no_grad():
        den = tweedie(model, noisy, 0.1)
    mse_noisy = float(((noisy - x) ** 2).mean())
    mse_den = float(((den - x) ** 2).mean())
    assert mse_den * 2 <= mse_noisy, f"denoised {mse_den:.5f} vs noisy {mse_noisy:.5f}"
    metrics = _manifest("digits-score", zoo_dir)["metrics"]
    for s in ("0.05", "0.1", "0.2", "0.5"):
        assert metrics[f"denoise_mse@{s}"] < metrics[f"noisy_mse@{s}"]
    assert metrics["denoise_mse@0.1"] * 2 <= metrics["noisy_mse@0.1"]


def test_digits_diffusion_denoiser_at_mid_timestep(zoo_dir: Path, digits_test) -> None:  # type: ignore[no-untyped-def]
    model = load_model("digits-diffusion", zoo_dir=zoo_dir, quiet=True)
    assert model.class_conditional and model.num_classes == 10
    x, y = digits_test.x, digits_test.y
    T = model.betas.shape[0]
    for t_int in (T // 10, T // 2):
        t = torch.full((x.shape[0],), t_int, dtype=torch.long)
        abar = model.alphas_cumprod[t_int]
        eps = torch.randn(x.shape, generator=generator(777))
        xt = abar.sqrt() * to_diffusion(x) + (1 - abar).sqrt() * eps
        with torch.no_grad():
            for lab in (None, y):
                x0 = model.predict_x0(xt, t, lab)
                mse_den = float(((from_diffusion(x0) - x) ** 2).mean())
                mse_noisy = float(((from_diffusion(xt / abar.sqrt()) - x) ** 2).mean())
                assert mse_den * 2 <= mse_noisy, f"t={t_int} y={'cond' if lab is not None else 'uncond'}"
    metrics = _manifest("digits-diffusion", zoo_dir)["metrics"]
    assert metrics[f"x0_mse@t{T // 2}"] * 2 <= metrics[f"noisy_mse@t{T // 2}"]


def test_digits_recipes_record_what_trained_them(zoo_dir: Path) -> None:
    for name in ("digits-score", "digits-diffusion", "digits-cnn-adv"):
        load_model(name, zoo_dir=zoo_dir, quiet=True)
        m = _manifest(name, zoo_dir)
        r = get_recipe(name)
        assert (m["arch"], m["dataset"], m["seed"], m["recipe_hash"]) == (r.arch, r.dataset, r.seed, r.hash)
        assert m["command"] == f"robbench zoo train {name}"
        assert m["train_cpu_seconds"] > 0 and m["steps"] == r.train["steps"]


@pytest.mark.parametrize("name", ["tiny-score-digits", "tiny-diffusion-digits"])
def test_training_is_deterministic_given_the_seed(name: str, tmp_path: Path) -> None:
    r = get_recipe(name).with_overrides(steps=6)
    a = train_recipe(r, zoo_dir=tmp_path / "a", quiet=True)
    b = train_recipe(r, zoo_dir=tmp_path / "b", quiet=True)
    assert a["sha256"] == b["sha256"] and a["metrics"] == b["metrics"]
    assert a["command"] == f"robbench zoo train {name} --steps 6"
    # a different seed is a different model
    c = train_recipe(r.model_copy(update={"seed": 1}), zoo_dir=tmp_path / "c", quiet=True)
    assert c["sha256"] != a["sha256"]
    assert not list((tmp_path / "a").glob("*.partial*.pt")), "the partial checkpoint is removed when training ends"


def _train_cmd(zoo: Path, steps: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "robbench.cli",
        "zoo",
        "train",
        "tiny-score-digits",
        "--steps",
        str(steps),
        "--zoo-dir",
        str(zoo),
        "--threads",
        "1",
        "--checkpoint-every",
        "5",
    ]


def test_killed_zoo_train_resumes_to_bit_identical_weights(tmp_path: Path) -> None:
    steps = 120
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="200")
    # the uninterrupted reference run goes on beside the one that gets killed
    ref = subprocess.Popen(
        _train_cmd(tmp_path / "ref", steps), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(killed, steps), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    partial = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(killed.glob("*.partial*.pt"))
        if found:
            partial = found[0]
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert partial is not None, "no partial checkpoint appeared before the run ended"
    assert not list(killed.glob("*.json")), "the run finished before it was killed"
    blob = torch.load(partial, weights_only=True)
    assert 0 < blob["step"] < steps
    resumed = subprocess.run(_train_cmd(killed, steps), env=env, capture_output=True, text=True, timeout=900)
    _, ref_err = ref.communicate(timeout=900)
    assert ref.returncode == 0, ref_err
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming tiny-score-digits" in resumed.stdout
    (man_ref,) = (tmp_path / "ref").glob("*.json")
    (man_res,) = killed.glob("*.json")
    a, b = json.loads(man_ref.read_text()), json.loads(man_res.read_text())
    assert b["resumed_from_step"] > 0 and a["resumed_from_step"] == 0
    assert a["sha256"] == b["sha256"], "resumed weights differ from the uninterrupted run"
    assert a["metrics"] == b["metrics"]
    assert not list(killed.glob("*.partial*.pt"))


def test_a_partial_checkpoint_of_another_recipe_is_refused(tmp_path: Path) -> None:
    from robbench.errors import CheckpointError
    from robbench.zoo.loop import Checkpointer

    r = get_recipe("tiny-score-digits").with_overrides(steps=4)
    ck = Checkpointer(r, tmp_path, 4)
    ck.path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"step": 2, "recipe_hash": "0000000000"}, ck.path)
    with pytest.raises(CheckpointError, match="cannot be resumed.*recipe hash"):
        train_recipe(r, zoo_dir=tmp_path, quiet=True)


@pytest.mark.parametrize("defense,params", [("quantize", {"levels": 2}), ("random_noise", {"sigma": 0.3})])
def test_classifier_augment_trains_on_clean_and_purified_samples(defense: str, params: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """Any registered purifier (deterministic or stochastic) is built through the registry."""
    from robbench.zoo.recipes import Recipe
    from robbench.zoo.train_adversarial import build_augment_defense, purify_split

    r = Recipe(
        name="aug-test",
        arch="small_cnn",
        config={"in_channels": 1, "width": 4},
        dataset="digits",
        trainer="classifier_augment",
        train={"steps": 60, "lr": 0.005, "defense": defense, "defense_params": params},
    )
    m = train_recipe(r, zoo_dir=tmp_path, quiet=True)
    assert set(m["metrics"]) >= {"test_accuracy", "purified_test_accuracy", "train_accuracy"}
    assert m["metrics"]["test_accuracy"] > 0.3  # 60 steps: well above chance (0.1)
    # the purified copies really differ from the clean images, reproducibly
    from robbench.models import build_model

    ds = load_dataset("digits")
    split = ds.load("test").subset(list(range(16)))
    d = build_augment_defense(r, build_model("small_cnn", in_channels=1, width=4), ds, tmp_path)
    a, b = purify_split(d, split, 0), purify_split(d, split, 0)
    assert torch.equal(a, b) and not torch.equal(a, split.x)


def test_classifier_augment_with_pursamere_turns_sam_off(tmp_path: Path, zoo_dir: Path) -> None:
    from robbench.core.registry import defenses
    from robbench.zoo.recipes import Recipe
    from robbench.zoo.train_adversarial import build_augment_defense

    if "pursamere" not in defenses:
        pytest.fail("the pursamere defense is not registered")
    r = Recipe(
        name="aug-pur",
        arch="small_cnn",
        config={"in_channels": 1, "width": 4},
        dataset="digits",
        trainer="classifier_augment",
        train={
            "steps": 4,
            "defense_params": {
                "score_model": "tiny-score-digits",
                "eps_pur": 0.1,
                "n_mc": 1,
                "levels": 1,
                "steps_per_level": 1,
            },
        },
    )
    from robbench.models import build_model

    defense = build_augment_defense(
        r, build_model("small_cnn", in_channels=1, width=4), load_dataset("digits"), zoo_dir
    )
    assert defense.params.sam is False
    x = load_dataset("digits").load("test").x[:8]
    out = defense.purify(x)
    assert out.shape == x.shape and ((out - x).abs().amax() <= 0.1 + 1e-6)


def test_recipe_hash_follows_the_recipes_it_requires() -> None:
    table = recipes()
    with_req = [r for r in table.values() if r.requires]
    for r in with_req:
        for dep in r.requires.values():
            assert dep in table, f"{r.name} requires unknown recipe {dep}"
    base = table["digits-cnn"]
    a = base.model_copy(update={"requires": {"score_model": "digits-score"}})
    b = base.model_copy(update={"requires": {"score_model": "tiny-score-digits"}})
    assert a.hash != b.hash != base.hash


def test_dataset_override_that_does_not_fit_exits_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from robbench.cli.app import app

    res = CliRunner().invoke(app, ["zoo", "train", "digits-cnn", "--dataset", "cifar10", "--zoo-dir", str(tmp_path)])
    assert res.exit_code == 2
    assert "takes 1-channel images but data set 'cifar10' has 3" in res.output
    res = CliRunner().invoke(app, ["zoo", "train", "no-such-model", "--zoo-dir", str(tmp_path)])
    assert res.exit_code == 2 and "unknown zoo model 'no-such-model'" in res.output
    assert not list(tmp_path.glob("*.pt"))


def test_zoo_ls_shows_metrics_and_zoo_verify_catches_a_tampered_checkpoint(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from robbench.cli.app import app
    from robbench.errors import CheckpointError

    runner = CliRunner()
    zoo = tmp_path / "zoo"
    res = runner.invoke(app, ["zoo", "ls", "--zoo-dir", str(zoo)])
    assert res.exit_code == 0 and "no models cached" in res.output
    res = runner.invoke(app, ["zoo", "train", "tiny-score-digits", "--steps", "4", "--zoo-dir", str(zoo)])
    assert res.exit_code == 0, res.output
    r = get_recipe("tiny-score-digits").with_overrides(steps=4)
    manifest = ZooStore(zoo).manifest(r.key)
    # ls: one line per cached model with its architecture, data set and recorded metrics
    res = runner.invoke(app, ["zoo", "ls", "--zoo-dir", str(zoo)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())  # the console may wrap the metrics onto more lines
    assert text.count(r.key) == 1
    entry = text[text.index(r.key) :]
    assert entry.startswith(f"{r.key} score_unet digits ")
    assert f"denoise_mse@0.1={manifest['metrics']['denoise_mse@0.1']:.4g}" in entry
    res = runner.invoke(app, ["zoo", "ls", "--recipes"])
    assert res.exit_code == 0 and "digits-score" in res.output and "digits-diffusion" in res.output
    # verify: ok, then one flipped byte fails it (exit 2, the key named) and loading refuses the file
    res = runner.invoke(app, ["zoo", "verify", "--zoo-dir", str(zoo)])
    assert res.exit_code == 0 and f"ok  {r.key}" in res.output, res.output
    ckpt = zoo / f"{r.key}.pt"
    data = bytearray(ckpt.read_bytes())
    data[-100] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    res = runner.invoke(app, ["zoo", "verify", "--zoo-dir", str(zoo)])
    assert res.exit_code == 2 and f"BAD  {r.key}  sha256 mismatch" in res.output, res.output
    assert "failed verification" in res.output
    with pytest.raises(CheckpointError, match=rf"{r.key}\.pt fails its hash"):
        ZooStore(zoo).load(r.key)
