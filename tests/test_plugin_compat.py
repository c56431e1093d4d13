"""Old import paths plugins were written against (issue 26 item 9): ``robbench.components`` and
``robbench.seeding`` still import, with a DeprecationWarning, and give the very objects of ``robbench.core``."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    from robbench.components import BuildContext, Params
    from robbench.seeding import SampleRNG
import robbench.core.components as c, robbench.core.seeding as s
assert Params is c.Params and BuildContext is c.BuildContext and SampleRNG is s.SampleRNG
moved = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
assert any("robbench.core.components" in m for m in moved), moved
assert any("robbench.core.seeding" in m for m in moved), moved
print("ok")
"""


def test_old_import_paths_still_work_with_a_deprecation_warning() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
