"""Renderers of a summary or pivot: rich, markdown, CSV, LaTeX (booktabs), JSON."""
