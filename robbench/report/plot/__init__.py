"""PNG figures of a results directory (matplotlib, the ``plot`` extra)."""
