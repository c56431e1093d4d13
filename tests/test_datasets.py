"""The digits reader: scikit-learn's bundled file read directly gives exactly ``load_digits``'s data."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from sklearn.datasets import load_digits

from robbench.data.digits import Digits, bundled_csv, read_digits


def test_digits_read_directly_equal_scikit_learn_and_keep_the_fixed_split() -> None:
    assert bundled_csv() is not None  # else read_digits falls back to load_digits and this test proves nothing
    images, labels = read_digits()
    ref = load_digits()
    np.testing.assert_array_equal(images, ref.images.astype(np.uint8))
    np.testing.assert_array_equal(images.astype(np.float64), ref.images)  # no value was rounded on the way
    np.testing.assert_array_equal(labels, ref.target)
    d = Digits()
    for split, n in Digits.split_sizes.items():
        s = d.load(split)
        assert len(s) == n and s.x.dtype.is_floating_point and float(s.x.max()) == 1.0 and float(s.x.min()) == 0.0
    # the split: every fifth image of each class, in index order, is a test image
    mask = np.zeros(len(ref.target), dtype=bool)
    for c in range(10):
        mask[np.flatnonzero(ref.target == c)[::5]] = True
    test = d.load("test")
    np.testing.assert_array_equal(test.y.numpy(), ref.target[mask])
    np.testing.assert_array_equal(test.x[:, 0].numpy(), (ref.images[mask] / 16.0).astype(np.float32))


def test_loading_digits_does_not_import_scikit_learn() -> None:
    code = (
        "import sys\nfrom robbench.data.digits import Digits\nDigits().load('test')\n"
        "print('sklearn' in sys.modules, 'scipy.stats' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
