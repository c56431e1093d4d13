"""Reports from stored results: summary, pivot, formats, paired comparison, plots. No torch."""
