"""No dead code in the product packages: vulture finds nothing that nothing uses.

A use by a test alone does not count (a function kept only for its test is dead):
vulture reads the product packages, their migrations, the benchmarks and two lists
of names, and reports only on the product packages, migrations left out.

Django reads many names from strings: dotted paths in settings, `fields` and
`list_display`, lookups such as ``"trial__sample"``, templates' ``{{ study.slug }}``.
Those strings are read here from the product's sources and templates, so that they
count as uses without a list kept by hand. What a framework reads by its own
convention (Meta, `perform_create`, `forward`) is in `vulture_whitelist.py`.
Django's own settings are read by Django; of settings.py only the project's own
(PARITY_*) are checked.
"""

import ast
import keyword
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WHITELIST = Path(__file__).with_name("vulture_whitelist.py")
# 60: vulture's confidence for an unused function, class, method, attribute or
# variable; imports (90) and unreachable code (100) are above it.
MIN_CONFIDENCE = 60
# Registered by the decorator itself: the admin site, Django's checks, Celery's signals.
IGNORE_DECORATORS = ["@admin.register", "@checks.register", "@worker_ready.connect"]
SETTINGS = "platform/parity/settings.py"
# A string that names something: a dotted path, a field, a lookup, an ordering.
NAME_LIKE = re.compile(r"-?[A-Za-z_][\w.]*")
TEMPLATE_TAG = re.compile(r"{[{%](.*?)[%}]}", re.S)
ATTRIBUTE = re.compile(r"\.([A-Za-z_]\w*)")


def product_folders() -> list[Path]:
    """The top-level packages that pyproject.toml installs, where their files are."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = setuptools.get("package-dir", {})
    return [ROOT / folders.get(name, name) for name in setuptools["packages"] if "." not in name]


def names_in_strings(folders: list[Path]) -> set[str]:
    """Names the product spells as strings in its Python sources and templates."""
    names = set()
    for folder in folders:
        for path in folder.rglob("*.py"):
            if "migrations" in path.parts:
                continue  # a migration names every field it ever had
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME_LIKE.fullmatch(node.value):
                    names.update(re.split(r"\.|__", node.value.lstrip("-")))
        for path in folder.rglob("*.html"):
            for tag in TEMPLATE_TAG.findall(path.read_text()):
                names.update(ATTRIBUTE.findall(tag))
    return {name for name in names if name.isidentifier() and not keyword.iskeyword(name)}


def unused_code(folders: list[Path], *, users: list[Path], tmp_path: Path) -> list[str]:
    """Vulture's findings in `folders` (migrations and Django's settings left out); `users` only use."""
    strings = tmp_path / "names_in_strings.py"
    strings.write_text("".join(f"{name}\n" for name in sorted(names_in_strings(folders))))
    result = subprocess.run(
        [sys.executable, "-m", "vulture", *map(str, folders), *map(str, users), str(WHITELIST), str(strings),
         f"--min-confidence={MIN_CONFIDENCE}", f"--ignore-decorators={','.join(IGNORE_DECORATORS)}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode in (0, 3), result.stderr  # 3: it found something
    return [line for line in result.stdout.splitlines() if _reported(line, folders)]


def _reported(line: str, folders: list[Path]) -> bool:
    path = (ROOT / line.split(":", 1)[0]).resolve()  # vulture names it from ROOT
    if "migrations" in path.parts or not any(path.is_relative_to(folder) for folder in folders):
        return False
    if path == ROOT / SETTINGS:
        return bool(re.search(r"'PARITY_\w+'", line))
    return True


def test_nothing_in_the_product_is_unused(tmp_path):
    folders = product_folders()
    assert {f.name for f in folders} >= {"parity", "generation", "annotate", "analysis"}
    unused = unused_code(folders, users=[ROOT / "bench"], tmp_path=tmp_path)
    assert not unused, (
        "unused code (delete it; if a framework calls it by convention, add it to "
        f"{WHITELIST.relative_to(ROOT)}):\n" + "\n".join(unused)
    )


def test_the_check_finds_what_only_a_test_uses(tmp_path):
    package = tmp_path / "planted"
    (package / "templates").mkdir(parents=True)
    (package / "tasks.py").write_text(
        "def by_settings():\n    pass\n\n\n"
        "def by_template():\n    pass\n\n\n"
        "def by_a_test_alone():\n    pass\n"
    )
    (package / "beat.py").write_text('print({"task": "planted.tasks.by_settings"})  # as a dotted path in settings\n')
    (package / "templates" / "page.html").write_text("{% if job.by_template %}{{ job.by_template }}{% endif %}\n")
    (tmp_path / "test_planted.py").write_text("from planted.tasks import by_a_test_alone\n\nby_a_test_alone()\n")
    unused = unused_code([package], users=[], tmp_path=tmp_path)
    assert [line.split(": ", 1)[1] for line in unused] == ["unused function 'by_a_test_alone' (60% confidence)"]
