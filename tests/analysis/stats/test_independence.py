"""analysis.stats imports no Django and nothing else of the project (ARCHITECTURE.md)."""

import subprocess
import sys

CODE = """
import sys
import analysis.stats
loaded = sorted(name for name in sys.modules
                if name.split('.')[0] in {'django', 'rest_framework', 'parity', 'generation', 'annotate'}
                or (name.startswith('analysis.') and not name.startswith('analysis.stats')))
print(loaded)
"""


def test_stats_package_stands_alone():
    result = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
