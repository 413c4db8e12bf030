"""Analysis stores nothing of its own yet: results are computed from judgments."""
