"""Running persist-audit's CLI from the peer benches: one scan of a tree, its findings as JSON."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


class CliError(Exception):
    pass


def scan_findings(cli: Path, root: str, label: str = "") -> list[dict]:
    """The findings of `persist-audit scan ROOT` (no report, no cache, never failing on findings)."""
    cmd = ["node", str(cli), "scan", root, "--no-write", "--no-cache",
           "--format", "json", "--fail-on", "never", "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    prefix = f"{label}: " if label else ""
    if proc.returncode != 0:
        raise CliError(f"{prefix}exit {proc.returncode}: {proc.stderr.strip()[:500]}")
    try:
        return json.loads(proc.stdout)["findings"]
    except (ValueError, KeyError) as exc:
        raise CliError(f"{prefix}unreadable output: {exc}") from exc
