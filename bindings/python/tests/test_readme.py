"""The README's quickstarts are copied from code that the test suite runs: every fenced c, python
and swift block must appear verbatim in the file the README names for it."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SOURCES = {
    "c": ROOT / "bindings/c/examples/laplace_quickstart.c",
    "python": ROOT / "bindings/python/examples/quickstart.py",
    "swift": ROOT / "bindings/swift/quickstart/Sources/Quickstart/main.swift",
}


def readme_blocks():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```(c|python|swift)\n(.*?)```", text, flags=re.S)


def test_every_quickstart_block_is_tested_code():
    blocks = readme_blocks()
    assert {language for language, _ in blocks} == set(SOURCES), "one quickstart per language"
    for language, block in blocks:
        source = SOURCES[language].read_text()
        assert block in source, f"README {language} block is not a verbatim part of {SOURCES[language].name}"


def test_readme_names_the_two_commands_first():
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```\n(.*?)```", text, flags=re.S).group(1)
    assert first_block.splitlines()[0].startswith("make demo")
    assert first_block.splitlines()[1].startswith("make test")


def test_python_quickstart_runs():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "bindings/python"))
    result = subprocess.run([sys.executable, str(SOURCES["python"])], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("log det P = 5.18471636896")
    assert any(line.startswith("rejected: A: eigenvalue -1") for line in lines)
    accuracy = next(float(line.split()[2]) for line in lines if line.startswith("test accuracy"))
    assert accuracy >= 0.95
    pruned = next(line for line in lines if "pruned test accuracy" in line)
    assert float(pruned.split("[")[1].split()[0]) >= 0.95  # half the weights gone, accuracy kept
