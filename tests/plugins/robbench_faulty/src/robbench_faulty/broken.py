"""A plugin module that fails to import (a missing dependency): robbench must name it, not crash."""

import robbench_faulty_missing_dependency  # noqa: F401  (deliberately absent)
