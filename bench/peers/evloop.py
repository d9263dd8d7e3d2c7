#!/usr/bin/env python3
"""Run evloop-lint's own detection tests against persist-audit.

    python3 bench/peers/evloop.py PEER_CHECKOUT [--cli PATH] [--json FILE] [-k TEXT]

PEER_CHECKOUT is an extracted copy of evloop-lint (see README.md beside this file); its code is
never copied into this repository. The peer's tests/test_detection.py and tests/test_adversarial.py
are plain pytest functions that build small in-memory projects through `harness.run_project(...)`
and assert `has(r, "EVL001", line=N)`, `not has(...)` and the like. This script imports those
modules with a shim `harness` in sys.modules whose run_project writes the files to a temp dir,
runs persist-audit's CLI on it and answers has/find_all/codes from persist-audit's findings.
`evloop_lint.codes` is stubbed too (the tests only take `Confidence` from it), so none of the
peer's analyzer code is imported.

Codes compared: EVL001 (sync blocking I/O) = PA301 or PA303, EVL002 (CPU-heavy) = PA305,
EVL011 (sync DB driver) = PA307.

Lines: evloop-lint reports a finding where the blocking call is, even inside a helper reached
from the async function; persist-audit reports where the async function makes the call that
starts the chain, and its JSON chain lists each hop with its place. So `has(r, CODE, line=N)`
holds when a mapped finding is on line N, or when a mapped finding's chain ends in a call that
appears on line N of a file that defines the function the chain reaches it through. Both are
recorded apart ("exact" and "via chain"), as is whether anything of the mapped code was flagged
at all.

Suppressions: the files' `# noqa: EVL001` comments are rewritten into persist-audit's codes
(`# noqa: PA301,PA303`) before the scan; unknown codes (`EVL999`) stay as they are.

Each test is classified from its source (the `ast` module):
  must-flag       asserts has(...) of a compared code (or asserts on find_all(...) of one);
  must-not-flag   asserts only `not has(...)` of compared codes;
  out of scope    everything else (EVL003-006 and EVL004, confidence tiers, depth truncation).
Must-flag and must-not-flag tests are then run. A test that reads a finding's `.chain` (labels
persist-audit does not have) or asks about a code outside the mapping stops there: its verdict is
that of the has() assertions run before that point; none is fabricated. run_project's options
(max_depth, confidence, ...) have no persist-audit counterpart and are only shown.
"""

from __future__ import annotations

import argparse
import ast
import enum
import importlib.util
import json
import os
import re
import sys
import tempfile
import traceback
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pa_cli import CliError, scan_findings

HERE = Path(__file__).resolve().parent
DEFAULT_CLI = HERE / ".." / ".." / "dist" / "src" / "main.js"
TEST_FILES = ("tests/test_detection.py", "tests/test_adversarial.py")

CODE_MAP: dict[str, tuple[str, ...]] = {
    "EVL001": ("PA301", "PA303"),
    "EVL002": ("PA305",),
    "EVL011": ("PA307",),
}
REVERSE_MAP = {pa: evl for evl, pas in CODE_MAP.items() for pa in pas}


# --------------------------------------------------------------------------------------------
# Running persist-audit
# --------------------------------------------------------------------------------------------
def run_cli(cli: Path, root: str) -> list[dict]:
    return scan_findings(cli, root)


# --------------------------------------------------------------------------------------------
# The shim: harness.run_project / has / find_all / codes, and evloop_lint.codes.Confidence
# --------------------------------------------------------------------------------------------
class ChainUnavailable(Exception):
    """A test read a finding's chain steps: persist-audit's chain has no labels or lines."""


class UnmappedCode(Exception):
    """A test asked about a code with no persist-audit counterpart."""


class Confidence(str, enum.Enum):
    DEFINITE = "definite"
    PROBABLE = "probable"
    POSSIBLE = "possible"


@dataclass
class HasCall:
    code: str
    line: int | None
    path: str | None
    any: bool        # some mapped finding (in `path`, when given), whatever its line
    exact: bool      # ... on the asserted line
    via_chain: bool  # ... whose chain ends in the call on the asserted line
    caller_line: int  # the test's source line that called has()

    @property
    def result(self) -> bool:
        return self.any if self.line is None else (self.exact or self.via_chain)


class _CodeValue:
    def __init__(self, value: str):
        self.value = value


class ShimFinding:
    """What the tests read of a finding: path, lineno, col, code.value, message, location()."""

    def __init__(self, raw: dict):
        self.raw = raw
        self.pa_code: str = raw["code"]
        self.code = _CodeValue(REVERSE_MAP.get(self.pa_code, self.pa_code))
        self.path: str = raw["path"]
        self.lineno: int = raw["line"]
        self.col: int = raw["column"] - 1
        self.message: str = raw["message"]
        # The JSON chain is a list of hops {path, line, column, function, call}; the names are
        # each hop's function, then what the last one calls.
        hops = raw.get("chain") or []
        self.names: list[str] = [h["function"] for h in hops] + ([hops[-1]["call"]] if hops else [])
        self.hops: list[tuple[str, int]] = [(h["path"], h["line"]) for h in hops]

    @property
    def chain(self):
        raise ChainUnavailable("the test reads chain steps")

    def location(self) -> str:
        return f"{self.path}:{self.lineno}:{self.col + 1}"

    def describe(self) -> str:
        text = f"{self.pa_code} {self.path}:{self.lineno}"
        if self.raw.get("advisory"):
            text += " (advisory)"
        if self.names:
            text += " [" + " > ".join(self.names) + "]"
        return text


class ShimResult:
    def __init__(self, files: dict[str, str], findings: list[dict], options: dict):
        self.files = files
        self.findings = [ShimFinding(f) for f in findings]
        self.options = options


class Trace:
    """What the running test did: its projects, their findings, its has() calls."""

    def __init__(self):
        self.results: list[ShimResult] = []
        self.has_calls: list[HasCall] = []


def _defines(src: str, name: str) -> bool:
    last = re.escape(name.split(".")[-1])
    return re.search(rf"^\s*(async\s+def|def|class)\s+{last}\b", src, re.M) is not None


def _in_file(f: ShimFinding, result: ShimResult, path: str) -> bool:
    """Is the finding in `path`, or does its chain go through a function defined there?"""
    src = result.files.get(path, "")
    return f.path == path or any(_defines(src, name) for name in f.names[1:-1])


def _chain_reaches_line(f: ShimFinding, result: ShimResult, line: int, path: str | None) -> bool:
    """Does one of the finding's chain hops sit on `line` (of `path`, when the test names one)?"""
    if any(hl == line and (path is None or hp == path) for hp, hl in f.hops):
        return True
    if len(f.names) < 2:
        return False
    callee = re.escape(f.names[-1].split(".")[-1])
    for rel, src in result.files.items():
        if path is not None and rel != path:
            continue
        lines = src.splitlines()
        if (1 <= line <= len(lines) and re.search(rf"\b{callee}\s*\(", lines[line - 1])
                and _defines(src, f.names[-2])):
            return True
    return False


NOQA_CODES = re.compile(r"(#[ \t]*noqa:[ \t]*)([A-Z]+\d+(?:[ \t]*,[ \t]*[A-Z]+\d+)*)")


def translate_noqa(src: str) -> str:
    """`# noqa: EVL001` names the peer's code: say it in persist-audit's (PA301,PA303)."""
    def codes(m: re.Match) -> str:
        names = [c.strip() for c in m.group(2).split(",") if c.strip()]
        return m.group(1) + ",".join(p for c in names for p in CODE_MAP.get(c, (c,)))
    return NOQA_CODES.sub(codes, src)


def make_harness(cli: Path, trace_ref: list[Trace]) -> types.ModuleType:
    harness = types.ModuleType("harness")

    def run_project(files: dict, **options) -> ShimResult:
        with tempfile.TemporaryDirectory(prefix="evloop-peer-") as tmp:
            for rel, src in files.items():
                full = os.path.join(tmp, rel)
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "w", encoding="utf-8") as fh:
                    fh.write(translate_noqa(src))
            findings = run_cli(cli, tmp)
        shown = {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in options.items()}
        result = ShimResult(dict(files), findings, shown)
        trace_ref[0].results.append(result)
        return result

    def has(result: ShimResult, code: str, *, line: int | None = None,
            path: str | None = None) -> bool:
        if code not in CODE_MAP:
            raise UnmappedCode(code)
        mapped = [f for f in result.findings if f.pa_code in CODE_MAP[code]]
        call = HasCall(
            code=code, line=line, path=path,
            any=any(path is None or _in_file(f, result, path) for f in mapped),
            exact=line is not None and any(
                f.lineno == line and path in (None, f.path) for f in mapped),
            via_chain=line is not None and any(
                _chain_reaches_line(f, result, line, path) for f in mapped),
            caller_line=sys._getframe(1).f_lineno,
        )
        trace_ref[0].has_calls.append(call)
        return call.result

    def find_all(result: ShimResult, code: str) -> list[ShimFinding]:
        if code not in CODE_MAP:
            raise UnmappedCode(code)
        return [f for f in result.findings if f.pa_code in CODE_MAP[code]]

    def codes(result: ShimResult) -> list[str]:
        return sorted(f.code.value for f in result.findings)

    harness.run_project = run_project
    harness.has = has
    harness.find_all = find_all
    harness.codes = codes
    return harness


def install_shims(cli: Path, trace_ref: list[Trace]) -> None:
    package = types.ModuleType("evloop_lint")
    package.__path__ = []  # a package, so `evloop_lint.codes` imports from sys.modules
    codes_module = types.ModuleType("evloop_lint.codes")
    codes_module.Confidence = Confidence
    package.codes = codes_module
    sys.modules["evloop_lint"] = package
    sys.modules["evloop_lint.codes"] = codes_module
    sys.modules["harness"] = make_harness(cli, trace_ref)


# --------------------------------------------------------------------------------------------
# Classifying a test from its source
# --------------------------------------------------------------------------------------------
@dataclass
class Assertion:
    line: int
    end_line: int
    kind: str                 # "has", "not has", "other"
    codes: list[str] = field(default_factory=list)
    asserted_line: int | None = None


def _call_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id
    return None


def _literal_code(call: ast.Call) -> str | None:
    if len(call.args) >= 2 and isinstance(call.args[1], ast.Constant):
        return call.args[1].value
    return None


def _has_calls(expr: ast.AST) -> list[ast.Call] | None:
    """The has() calls an assertion is made of: `has(...)` or `has(...) or has(...)`."""
    if _call_name(expr) == "has":
        return [expr]
    if isinstance(expr, ast.BoolOp) and isinstance(expr.op, ast.Or):
        parts = [_has_calls(v) for v in expr.values]
        if all(p is not None for p in parts):
            return [c for p in parts for c in p]
    return None


def classify_assert(node: ast.Assert) -> Assertion:
    test, kind = node.test, "has"
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        test, kind = test.operand, "not has"
    calls = _has_calls(test)
    if calls is None:
        codes = sorted({c for n in ast.walk(node.test) if _call_name(n) == "find_all"
                        for c in [_literal_code(n)] if c})
        return Assertion(node.lineno, node.end_lineno, "other", codes)
    line = None
    for kw in calls[0].keywords:
        if kw.arg == "line" and isinstance(kw.value, ast.Constant):
            line = kw.value.value
    return Assertion(node.lineno, node.end_lineno, kind,
                     [c for c in map(_literal_code, calls) if c], line)


@dataclass
class TestCase:
    file: str
    name: str
    line: int
    end_line: int
    klass: str                # "must-flag", "must-not-flag", "out of scope"
    expected: str
    assertions: list[Assertion]
    find_all_codes: list[str]

    @property
    def codes(self) -> list[str]:
        """The compared codes the test asks about."""
        asked = {c for a in self.assertions for c in a.codes} | set(self.find_all_codes)
        return sorted(c for c in asked if c in CODE_MAP)


def classify_function(fn: ast.FunctionDef, file: str) -> TestCase:
    assertions = [classify_assert(n) for n in ast.walk(fn) if isinstance(n, ast.Assert)]
    assertions.sort(key=lambda a: a.line)
    # find_all(...) outside assertion messages, e.g. `sleeps = find_all(r, "EVL001")`
    messages = {id(n) for a in ast.walk(fn) if isinstance(a, ast.Assert) and a.msg
                for n in ast.walk(a.msg)}
    find_all_codes = {c for n in ast.walk(fn) if id(n) not in messages
                      and _call_name(n) == "find_all" for c in [_literal_code(n)] if c}

    def in_scope(codes):
        return bool(codes) and all(c in CODE_MAP for c in codes)

    positive = [a for a in assertions if a.kind == "has" and in_scope(a.codes)]
    negative = [a for a in assertions if a.kind == "not has" and in_scope(a.codes)]
    foreign = sorted({c for a in assertions if a.kind != "other"
                      for c in a.codes if c not in CODE_MAP})
    others = [a for a in assertions if a.kind == "other"]

    def show(a: Assertion) -> str:
        text = "|".join(a.codes) + (f"@{a.asserted_line}" if a.asserted_line else "")
        return ("not " if a.kind == "not has" else "") + text

    if positive or (in_scope(sorted(find_all_codes)) and others and not foreign):
        klass = "must-flag"
        expected = ", ".join(show(a) for a in positive + negative)
        if not positive:
            expected = "find_all " + "|".join(sorted(find_all_codes)) + " (line set / count)"
    elif negative and not foreign:
        klass = "must-not-flag"
        expected = ", ".join(show(a) for a in negative)
    else:
        klass = "out of scope"
        asked = foreign or sorted({c for a in assertions for c in a.codes})
        expected = "asserts " + (", ".join(asked) if asked else "nothing comparable")
    return TestCase(file, fn.name, fn.lineno, fn.end_lineno or fn.lineno, klass, expected,
                    assertions, sorted(find_all_codes))


def collect_tests(path: Path, rel: str) -> list[TestCase]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [classify_function(node, rel) for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]


# --------------------------------------------------------------------------------------------
# Running a test
# --------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    verdict: str              # "pass", "fail", "error", "not run"
    result: str               # what persist-audit did, in words
    note: str = ""
    flagged_any: bool | None = None  # any finding of a code mapped from those the test asks about
    line_match: str | None = None    # asserted lines: "exact", "chain", "no"; None if none asserted
    findings: list[str] = field(default_factory=list)
    options: list[dict] = field(default_factory=list)
    has_calls: list[dict] = field(default_factory=list)


def _line_in(tb, filename: str) -> int | None:
    lines = [fr.lineno for fr in traceback.extract_tb(tb) if fr.filename == filename]
    return lines[-1] if lines else None


def polarity(case: TestCase, call: HasCall) -> str:
    for a in case.assertions:
        if a.line <= call.caller_line <= a.end_line:
            return a.kind
    return "has"


def describe(case: TestCase, calls: list[HasCall]) -> str:
    words = []
    for c in calls:
        where = f"@{c.line}" if c.line is not None else ""
        if polarity(case, c) == "not has":
            state = "flagged" if c.result else "clean"
        elif c.line is None:
            state = "flagged" if c.any else "not flagged"
        elif c.exact:
            state = "flagged at line"
        elif c.via_chain:
            state = "flagged via chain"
        elif c.any:
            state = "flagged elsewhere only"
        else:
            state = "not flagged"
        words.append(f"{c.code}{where}: {state}")
    return "; ".join(dict.fromkeys(words)) or "-"


def run_case(case: TestCase, fn, module_file: str, trace_ref: list[Trace]) -> Outcome:
    trace = trace_ref[0] = Trace()
    verdict, note = "pass", ""
    try:
        fn()
    except AssertionError:
        verdict = "fail"
        line = _line_in(sys.exc_info()[2], module_file)
        note = f"assertion at line {line} failed" if line else "assertion failed"
    except (ChainUnavailable, UnmappedCode) as exc:
        stop = _line_in(sys.exc_info()[2], module_file) or case.end_line
        skipped = [a for a in case.assertions if a.line > stop and a.kind != "other"]
        what = ("chain steps" if isinstance(exc, ChainUnavailable)
                else f"code {exc.args[0]} (not mapped)")
        note = f"stopped at line {stop}: reads {what}; has() assertions before it held"
        if skipped:
            verdict = "fail"
            note += f"; {len(skipped)} has() assertion(s) after it not evaluated"
    except CliError as exc:
        verdict, note = "error", f"persist-audit: {exc}"
    except Exception as exc:  # noqa: BLE001 - report, do not crash the run
        verdict, note = "fail", f"{type(exc).__name__}: {exc}"

    findings = [f for r in trace.results for f in r.findings]
    asked = {pa for code in case.codes for pa in CODE_MAP[code]}
    lined = [c for c in trace.has_calls if c.line is not None and polarity(case, c) == "has"]
    if not lined:
        line_match = None
    elif all(c.exact for c in lined):
        line_match = "exact"
    elif all(c.exact or c.via_chain for c in lined):
        line_match = "chain"
    else:
        line_match = "no"
    outcome = Outcome(
        verdict=verdict,
        result=describe(case, trace.has_calls),
        note=note,
        flagged_any=any(f.pa_code in asked for f in findings),
        line_match=line_match,
        findings=[f.describe() for f in findings],
        options=[r.options for r in trace.results if r.options],
        has_calls=[asdict(c) for c in trace.has_calls],
    )
    if verdict == "error":
        outcome.result = "-"
    elif not trace.has_calls:
        outcome.result = "flagged" if outcome.flagged_any else "not flagged"
    return outcome


def load_module(path: Path, name: str) -> types.ModuleType:
    saved_path = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved_path  # the tests put the peer's src/ on sys.path; take it off
    return module


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = []
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r, widths)] + [r[-1]]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("peer", type=Path, help="extracted evloop-lint checkout")
    parser.add_argument("--cli", type=Path, default=DEFAULT_CLI,
                        help="persist-audit CLI (default: dist/src/main.js of this checkout)")
    parser.add_argument("--json", type=Path, help="write every test and the totals here")
    parser.add_argument("-k", dest="only", help="run only tests whose name contains this")
    args = parser.parse_args()

    cli = args.cli.resolve()
    if not cli.is_file():
        print(f"no persist-audit CLI at {cli} (npm run build first)", file=sys.stderr)
        return 2
    trace_ref = [Trace()]
    install_shims(cli, trace_ref)

    records = []
    for rel in TEST_FILES:
        path = (args.peer / rel).resolve()
        if not path.is_file():
            print(f"missing {path}: is {args.peer} an evloop-lint checkout?", file=sys.stderr)
            return 2
        module = load_module(path, "evloop_peer_" + path.stem)
        for case in collect_tests(path, rel):
            if args.only and args.only not in case.name:
                continue
            if case.klass == "out of scope":
                outcome = Outcome(verdict="not run", result="-")
            else:
                outcome = run_case(case, getattr(module, case.name), str(path), trace_ref)
            records.append((case, outcome))

    rows = [["file", "test", "class", "expected", "persist-audit", "verdict", "our findings"]]
    for case, out in records:
        found = "; ".join(out.findings) or "-"
        if out.options:
            found += "  {opts: " + ", ".join(f"{k}={v}" for o in out.options
                                             for k, v in o.items()) + "}"
        rows.append([Path(case.file).stem.removeprefix("test_"), case.name, case.klass,
                     case.expected, out.result, out.verdict, found])
    print(table(rows))

    notes = [(c, o) for c, o in records if o.note]
    if notes:
        print("\nNotes:")
        for case, out in notes:
            print(f"  {case.name}: {out.note}")

    must_flag = [o for c, o in records if c.klass == "must-flag"]
    must_not = [o for c, o in records if c.klass == "must-not-flag"]
    passed = [o for o in must_flag if o.verdict == "pass"]
    totals = {
        "must_flag": len(must_flag),
        "must_flag_flagged": len(passed),
        "must_flag_flagged_at_asserted_line": sum(o.line_match == "exact" for o in passed),
        "must_flag_flagged_via_chain": sum(o.line_match == "chain" for o in passed),
        "must_flag_flagged_no_line_asserted": sum(o.line_match is None for o in passed),
        "must_flag_any_mapped_finding": sum(bool(o.flagged_any) for o in must_flag),
        "must_not_flag": len(must_not),
        "must_not_flag_clean": sum(o.verdict == "pass" for o in must_not),
        "out_of_scope": sum(c.klass == "out of scope" for c, _ in records),
        "errors": sum(o.verdict == "error" for _, o in records),
    }
    t = totals
    print(f"\nmust-flag: {t['must_flag_flagged']} of {t['must_flag']} flagged "
          f"({t['must_flag_flagged_at_asserted_line']} at the asserted line, "
          f"{t['must_flag_flagged_via_chain']} via the chain, "
          f"{t['must_flag_flagged_no_line_asserted']} with no line asserted); "
          f"{t['must_flag_any_mapped_finding']} of {t['must_flag']} have a finding of the "
          f"mapped code somewhere")
    print(f"must-not-flag: {t['must_not_flag_clean']} of {t['must_not_flag']} clean")
    print(f"out of scope: {t['out_of_scope']}")
    if t["errors"]:
        print(f"errors (persist-audit did not run): {t['errors']}")

    if args.json:
        args.json.write_text(json.dumps({
            "peer": "evloop-lint", "cli": str(cli), "codeMap": CODE_MAP, "totals": totals,
            "tests": [{**asdict(c), **asdict(o)} for c, o in records],
        }, indent=2) + "\n", encoding="utf-8")
    return 2 if t["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
