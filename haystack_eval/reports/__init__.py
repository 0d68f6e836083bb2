"""Reports: heatmaps (the only place that imports matplotlib/seaborn), HTML and Markdown reports, checks."""
