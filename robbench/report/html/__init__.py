"""The self-contained HTML report (``robbench report``)."""
