"""Helpers shared by the test modules (``from tests.helpers import ...``)."""

from __future__ import annotations

import json

from deeper.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    """Run ``deeper ARGV`` in-process: exit code, stdout and stderr."""
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def last_json(stdout: str) -> dict:
    """The JSON object a ``--json`` command prints as its last line."""
    return json.loads(stdout.strip().splitlines()[-1])
