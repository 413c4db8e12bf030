"""How it is judged: studies, trials, the assignment engine, annotator pages, crowd links."""
