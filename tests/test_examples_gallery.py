"""`evaluation.save_examples: N` (issue 27): the first N samples of every attacked cell stored as images (clean,
judged adversarial, purified), written beside the rows without changing a row or an identity, and shown in the
report's gallery as inline PNGs."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robbench.report.html.gallery import png
from robbench.results.examples import read_examples
from tests.conftest import base_suite, run_suite_cli


def _suite(**evaluation: Any) -> dict[str, Any]:
    return base_suite(
        data={"dataset": "digits", "n_samples": 12},
        defenses=[{"name": "none"}, {"name": "random_noise", "params": {"sigma": 0.2}}],
        attacks=[{"id": "clean", "name": "clean"}, {"id": "PGD3", "name": "pgd", "params": {"steps": 3}, "eot": 2}],
        evaluation={"batch_size": 5, **evaluation},
    )


def _rows(loaded: Any) -> pd.DataFrame:
    keep = ["cell", "sample_id", "adv_pred", "adv_correct_draws", "pert_norm", "clean_pred"]
    return loaded.rows[keep].sort_values(["cell", "sample_id"]).reset_index(drop=True)


def test_examples_are_stored_and_change_no_row(write_suite: Any, tmp_path: Path, zoo_dir: Path) -> None:
    plain, _ = run_suite_cli(write_suite(_suite(), name="plain.yaml"), tmp_path / "plain", zoo_dir)
    kept, _ = run_suite_cli(write_suite(_suite(save_examples=3), name="kept.yaml"), tmp_path / "kept", zoo_dir)
    pd.testing.assert_frame_equal(_rows(plain), _rows(kept))  # same cell ids, same rows
    assert not (tmp_path / "plain" / "examples").exists()
    stored = read_examples(tmp_path / "kept")
    attacked = {c.id: c for c in kept.manifest.cells if c.attack != "clean"}
    assert set(stored) == set(attacked)  # every attacked cell, no clean cell
    rows = kept.rows.set_index(["cell", "sample_id"])
    for cell, exs in stored.items():
        assert [e.index for e in exs] == [0, 1, 2]  # the first three samples, across two batches of 5
        for e in exs:
            row = rows.loc[(cell, e.sample_id)]
            assert (e.adv_pred, e.clean_pred, e.label) == (
                int(row["adv_pred"]),
                int(row["clean_pred"]),
                int(row["label"]),
            )
            assert e.clean.shape == e.adv.shape == (1, 8, 8) and np.abs(e.adv - e.clean).max() > 0
            if attacked[cell].defense == "none":
                assert e.purified is None
            else:
                assert e.purified is not None and not np.allclose(e.purified, e.adv)  # noise added


def test_gallery_in_the_report(write_suite: Any, tmp_path: Path, zoo_dir: Path) -> None:
    from robbench.report.html.page import render_report

    run_suite_cli(write_suite(_suite(save_examples=2)), tmp_path / "res", zoo_dir)
    page = render_report([tmp_path / "res"])
    assert "<h2>Examples</h2>" in page
    assert page.count('src="data:image/png;base64,') == 2 * 2 + 2 * 3  # 2 each; none: clean+adv, noise: +purified
    plain = tmp_path / "plain"
    run_suite_cli(write_suite(_suite(), name="p.yaml"), plain, zoo_dir)
    assert "<h2>Examples</h2>" not in render_report([plain])


def test_png_is_a_valid_image() -> None:
    img = np.linspace(0, 1, 3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    data = png(img)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    from matplotlib import image as mimage

    back = mimage.imread(__import__("io").BytesIO(data), format="png")
    assert back.shape == (4, 5, 3) and np.allclose(back, np.moveaxis(img, 0, -1), atol=1 / 255)
    grey = png(img[:1])
    assert zlib.decompress(grey[grey.index(b"IDAT") + 4 : grey.index(b"IEND") - 8])[:1] == b"\x00"
