"""Pure numpy/scipy statistics of judgments: no Django, no project imports."""
