"""The gallery: stored example images (``evaluation.save_examples``) per attacked cell, as inline PNGs."""

from __future__ import annotations

import base64
import struct
import zlib
from html import escape

import numpy as np

from robbench.results.examples import Example, read_examples
from robbench.results.load import Loaded


def png(image: np.ndarray) -> bytes:
    """An 8-bit PNG (grey for one channel, RGB for three) of a float CHW image in [0, 1]."""
    chw = np.clip(np.nan_to_num(image), 0.0, 1.0)
    hwc = np.round(255 * np.moveaxis(chw, 0, -1)).astype(np.uint8)
    h, w, c = hwc.shape
    if c not in (1, 3):
        hwc, c = hwc[..., :1], 1
    raw = b"".join(b"\x00" + hwc[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 0 if c == 1 else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _img(image: np.ndarray | None, alt: str) -> str:
    if image is None:
        return "<span class='legend'>(no purifier)</span>"
    data = base64.b64encode(png(image)).decode()
    return f'<img class="ex" alt="{escape(alt)}" title="{escape(alt)}" src="data:image/png;base64,{data}">'


def _figure(ex: Example) -> str:
    fooled = ex.adv_pred != ex.label
    verdict = "<b class='bad'>fooled</b>" if fooled else "held"
    return (
        f"<figure class='ex'>{_img(ex.clean, 'clean')}{_img(ex.adv, 'adversarial')}{_img(ex.purified, 'purified')}"
        f"<figcaption>#{ex.index} label {ex.label}: clean → {ex.clean_pred}, adversarial → {ex.adv_pred} "
        f"({verdict}, judge's first draw)</figcaption></figure>"
    )


def gallery(loaded: Loaded) -> str:
    """The section's HTML, or an empty string when the run stored no examples."""
    stored = read_examples(loaded.path)
    if not stored:
        return ""
    labels = {c.id: c.label for c in loaded.manifest.cells}
    blocks = [
        f"<h3>{escape(labels.get(cell, cell))}</h3><div class='gallery'>{''.join(_figure(e) for e in exs)}</div>"
        for cell, exs in sorted(stored.items(), key=lambda kv: labels.get(kv[0], kv[0]))
    ]
    return (
        "<h2>Examples</h2><p class='legend'>The first samples of each attacked cell (<code>evaluation.save_examples"
        "</code>), left to right: clean, adversarial as judged, and its purification under the judge's first draw. "
        "The predictions are the stored rows' (draw 0); a randomised defense may be fooled on another draw.</p>"
        + "".join(blocks)
    )
