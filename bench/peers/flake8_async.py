#!/usr/bin/env python3
"""Score persist-audit against flake8-async's eval files for blocking calls in async functions.

    python3 bench/peers/flake8_async.py PEER_CHECKOUT [--cli PATH] [--json FILE] [--import-unbound]

PEER_CHECKOUT is an extracted copy of flake8-async (see README.md beside this file); its code is
never copied into this repository, nor imported: this script only reads its eval files. Each
file of tests/eval_files/ states what the plugin must report as trailing comments on the
offending line, e.g. `time.sleep(5)  # ASYNC251: 4, "trio"` (code, then column and message
arguments). The files covered are those whose enabled codes (from the file name,
`async251_multi_library.py` -> ASYNC251, or from a `# ARG --enable=...` line, as the peer's
tests/test_flake8_async.py reads them) include a family persist-audit has:

    ASYNC210 211 212 (sync HTTP)  220 221 222 (processes)  230 231 232 (files)
    ASYNC240 (os.path)  250 (input())                      -> PA301
    ASYNC251 (time.sleep)                                  -> PA303

Each file is scanned alone from a temp dir and compared line by line. An expected line must
carry a finding of the mapped code on that line (counted per line: a line expecting two calls
counts once, marked "partial" if fewer findings were reported). Any other line carrying a PA301
or PA303 finding is a false positive, except these, listed apart and not counted:
  * the peer's comments, on the line or just above the enclosing top-level def, say it should
    flag it but does not (`# should error`, `# not handled`, `# not implemented`, ...);
  * a call of another covered family, in an async function, whose codes this eval file does not
    enable: the peer's harness enables only the file's own codes, so async232.py opens files and
    async211.py calls a urllib3.PoolManager (ASYNC212's) without expecting anything there;
  * findings reached through a call to another function: the peer never follows calls, so its
    files say nothing either way (the chain is shown, to judge by hand).
Likewise an expectation inside a region the peer's comments describe as its own error ("Known
unhandled cases: it will error on non-explicit assignments") is listed apart, not counted.

The asyncio view. The peer's harness runs every eval file three times, as trio, anyio and
asyncio: unless the file says `# BASE_LIBRARY x`, it is written for trio and the harness
rewrites `trio` to the library under test (whole words); `# NOASYNCIO` makes the asyncio run
only check that nothing crashes, and `# ASYNCIO_NO_ERROR` makes it expect no error at all.
persist-audit targets asyncio services, so:
  * files the harness checks under asyncio are rewritten the same way (trio -> asyncio) and
    counted, with nothing expected under `# ASYNCIO_NO_ERROR`;
  * `# NOASYNCIO` files that have an `<name>_asyncio.py` twin (async22x, async23x, async232) are
    the trio/anyio view of the same cases: the twin is what the harness checks for asyncio, and
    it differs where the semantics do (`trio.wrap_file(open(...))` is safe on trio, while the
    twin expects `asyncio.wrap_file(open(...))` to be flagged). They are reported apart as
    "trio/anyio only" and not counted;
  * `# NOASYNCIO` files without a twin (async240, async250, the *_multi_library variants,
    no_library) are counted as written: their comments say the marker is about the message
    only ("formatting sufficiently different", "tests asyncio without replacing for it"), and
    the peer's Visitor22X/24X/25X decide what to flag without looking at the library; only the
    message (and, for 22x/23x/24x, an `_asyncio` suffix on the code) changes.

The peer matches names, so some eval files call modules they never import (async22x calls
`subprocess.run()` with no `import subprocess`). Missed lines say so. `--import-unbound` scores
a variant where those stdlib modules are imported on line 1 (so no line moves).
"""

from __future__ import annotations

import argparse
import ast
import builtins
import json
import keyword
import re
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pa_cli import CliError, scan_findings

HERE = Path(__file__).resolve().parent
DEFAULT_CLI = HERE / ".." / ".." / "dist" / "src" / "main.js"

FAMILY_CODE = {
    **{c: "PA301" for c in ("ASYNC210", "ASYNC211", "ASYNC212", "ASYNC220", "ASYNC221",
                            "ASYNC222", "ASYNC230", "ASYNC231", "ASYNC232", "ASYNC240",
                            "ASYNC250")},
    "ASYNC251": "PA303",
}
FP_CODES = {"PA301", "PA303"}

# What each covered family flags, by the call's text on the line or by the name persist-audit
# reports (the first `...` of its message), and the codes that flag it. A flagged call of this
# kind in a file that enables none of those codes is not a false positive: the peer's harness
# only enables the file's own codes.
FAMILY_CALLS = [
    ("sync HTTP", {"ASYNC210"},
     r"\b(requests|httpx2?)\.\w+\s*\(|\burllib3\.request\s*\(|\burlopen\s*\(", None),
    ("HTTP client object", {"ASYNC212"}, None,
     r"^(httpx2?\.Client\.(close|delete|get|head|options|patch|post|put|request|send|stream)"
     r"|urllib3\.(\w+\.)?(HTTPS?ConnectionPool|ConnectionPool|PoolManager|ProxyManager"
     r"|RequestMethods)\.\w+)$"),
    ("process", {"ASYNC220", "ASYNC221", "ASYNC222"},
     r"\bsubprocess\.\w+\s*\(|\bos\.(system|popen|posix_spawnp?|spawn\w+|wait\w*)\s*\(", None),
    ("open", {"ASYNC230", "ASYNC231"},
     r"(?<![\w.])(open|io\.open|io\.open_code|os\.fdopen)\s*\(", None),
    ("os.path", {"ASYNC240"}, r"\bos\.path\.\w+\s*\(", None),
    ("input", {"ASYNC250"}, r"(?<![\w.])input\s*\(", None),
    ("time.sleep", {"ASYNC251"}, r"\b(time\.)?sleep\s*\(", None),
]

# The peer's expectation comment: `# ASYNC230_asyncio: 4, 'open'` or `# error: ...`
EXPECTATION = re.compile(r"(error|ASYNC...)(_.*)?:([^#]*)(?=#|$)")
# The peer's comments on its own limits, on the line or above the enclosing top-level def:
# "# should error", "# not handled", "# not implemented", "# ***** Known unhandled cases *****",
# "# It will error on non-explicit assignments", "# Return types are not parsed", ...
PEER_LIMIT = re.compile(r"should error|not handled|not implemented|not supported|not parsed"
                        r"|known unhandled|will error on", re.I)
MARKERS = ("NOANYIO", "NOTRIO", "NOASYNCIO", "ANYIO_NO_ERROR", "TRIO_NO_ERROR",
           "ASYNCIO_NO_ERROR")


# --------------------------------------------------------------------------------------------
# Reading an eval file the way the peer's harness does
# --------------------------------------------------------------------------------------------
@dataclass
class EvalFile:
    path: Path
    enabled: list[str]
    markers: set[str]
    base_library: str
    view: str                 # "asyncio", "asyncio (as written)", "trio/anyio only"
    why: str
    content: str              # what is scanned
    expected: dict[int, list[str]] = field(default_factory=dict)  # line -> covered codes


def enabled_codes(path: Path, content: str) -> list[str]:
    stem = path.stem.split("_", 1)[0].upper()
    enabled = stem if re.fullmatch(r"ASYNC\d\d\d", stem) else ""
    for m in re.finditer(r"#\s*ARG --enable=(\S*)", content):
        enabled = m.group(1)
    return [c for c in enabled.split(",") if c]


def replace_library(content: str, original: str, new: str) -> str:
    """The harness's substitution, for asyncio: whole-word (or `_`-prefixed), not after `-`."""
    return re.sub(rf"(?<!-)(?:\b|(?<=_)){original}\b", new, content)


def parse_expectations(content: str, file_code: str) -> dict[int, list[str]]:
    expected: dict[int, list[str]] = {}
    for lineno, line in enumerate(content.split("\n"), start=1):
        line = line.strip()
        if not line or line.startswith("#") or "#" not in line:
            continue
        for code, _suffix, _args in EXPECTATION.findall(line):
            code = file_code if code == "error" else code
            if code in FAMILY_CODE:
                expected.setdefault(lineno, []).append(code)
    return expected


def read_eval_file(path: Path) -> EvalFile | None:
    raw = path.read_text(encoding="utf-8")
    enabled = enabled_codes(path, raw)
    if not any(c in FAMILY_CODE for c in enabled):
        return None
    markers = set(re.findall(rf"# ({'|'.join(MARKERS)})\b", raw))
    m = re.search(r"# BASE_LIBRARY (\w*)", raw)
    base = m.group(1) if m else "trio"
    twin = path.with_name(path.stem + "_asyncio.py")

    if "NOASYNCIO" in markers and twin.exists():
        view, why, content = "trio/anyio only", f"# NOASYNCIO; {twin.name} is the asyncio view", raw
    elif "NOASYNCIO" in markers:
        view, why, content = ("asyncio (as written)",
                              "# NOASYNCIO is about message wording only", raw)
    elif base != "asyncio":
        view, why, content = "asyncio", f"{base} -> asyncio", replace_library(raw, base, "asyncio")
    else:
        view, why, content = "asyncio", "written for asyncio", raw

    file_code = enabled[0] if enabled else ""
    expected = parse_expectations(content, file_code)
    if view != "trio/anyio only" and "ASYNCIO_NO_ERROR" in markers:
        expected, why = {}, why + "; # ASYNCIO_NO_ERROR: nothing expected"
    return EvalFile(path, enabled, markers, base, view, why, content, expected)


@dataclass
class SourceFacts:
    in_async: set[int]        # lines of calls whose nearest enclosing function is `async def`
    bound: set[str]           # names imported, defined or assigned anywhere in the module
    notes: dict[int, str]     # line -> comments above its top-level def, joined


def source_facts(content: str) -> SourceFacts:
    facts = SourceFacts(set(), set(dir(builtins)), {})
    try:
        tree = ast.parse(content)
    except SyntaxError:
        return facts

    def visit(node: ast.AST, in_async: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.AsyncFunctionDef):
                visit(child, True)
            elif isinstance(child, (ast.FunctionDef, ast.Lambda, ast.ClassDef)):
                visit(child, False)
            else:
                if in_async and isinstance(child, ast.Call):
                    facts.in_async.update(range(child.lineno, child.end_lineno + 1))
                visit(child, in_async)

    visit(tree, False)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            facts.bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            facts.bound.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            facts.bound.add(node.id)
        elif isinstance(node, ast.arg):
            facts.bound.add(node.arg)

    lines = content.split("\n")
    previous_end = 0
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        above = " ".join(ln.strip() for ln in lines[previous_end:start - 1]
                         if ln.strip().startswith("#"))
        for line in range(node.lineno, node.end_lineno + 1):
            facts.notes[line] = above
        previous_end = node.end_lineno
    return facts


def unbound_roots(code: str, facts: SourceFacts) -> list[str]:
    """Names a call on the line starts from that the module never binds (`subprocess.run()`)."""
    roots = re.findall(r"(?<![\w.])([A-Za-z_]\w*)(?=\s*[.(])", code)
    return sorted({r for r in roots if r not in facts.bound and not keyword.iskeyword(r)})


def import_unbound(ev: EvalFile) -> None:
    """--import-unbound: import the stdlib modules the file uses but never imports (the 22x
    files call `subprocess.run()` with no `import subprocess`: the peer matches names), on
    line 1 when that line is a comment, so that no line moves."""
    facts = source_facts(ev.content)
    code = "\n".join(ln.split("#", 1)[0] for ln in ev.content.split("\n"))
    modules = [n for n in unbound_roots(code, facts) if n in sys.stdlib_module_names]
    first, _, rest = ev.content.partition("\n")
    if modules and (not first.strip() or first.lstrip().startswith("#")):
        ev.content = f"import {', '.join(modules)}  {first}".rstrip() + "\n" + rest
        ev.why += f"; added `import {', '.join(modules)}` on line 1"


# --------------------------------------------------------------------------------------------
# Scanning and comparing
# --------------------------------------------------------------------------------------------
def scan(cli: Path, name: str, content: str) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="flake8-async-peer-") as tmp:
        (Path(tmp) / name).write_text(content, encoding="utf-8")
        return scan_findings(cli, tmp, name)


@dataclass
class Line:
    line: int
    text: str
    expected: list[str]
    found: list[str]          # "PA301 message" of the findings on the line
    note: str = ""


@dataclass
class FileResult:
    file: str
    view: str
    why: str
    enabled: list[str]
    expected: int = 0
    flagged: list[Line] = field(default_factory=list)
    missed: list[Line] = field(default_factory=list)
    false_positives: list[Line] = field(default_factory=list)
    peer_quirks: list[Line] = field(default_factory=list)    # expected, peer says it errs
    peer_admits: list[Line] = field(default_factory=list)    # flagged, peer says it should
    other_family: list[Line] = field(default_factory=list)   # flagged, family not enabled
    through_calls: list[Line] = field(default_factory=list)  # flagged via a call chain
    by_code: dict[str, list[int]] = field(default_factory=dict)  # code -> [expected, flagged]


def describe_finding(f: dict) -> str:
    text = f"{f['code']} {f['message']}"
    if f.get("chain"):
        text += " [" + " > ".join([h["function"] for h in f["chain"]] + [f["chain"][-1]["call"]]) + "]"
    return text


def reported_name(f: dict) -> str:
    m = re.search(r"`([^`]+)`", f["message"])
    return m.group(1) if m else ""


def compare(ev: EvalFile, findings: list[dict]) -> FileResult:
    name = ev.path.name
    src_lines = ev.content.split("\n")
    on_line: dict[int, list[dict]] = {}
    for f in findings:
        if f["path"] == name:
            on_line.setdefault(f["line"], []).append(f)
    facts = source_facts(ev.content)
    res = FileResult(name, ev.view, ev.why, ev.enabled)

    def make(line: int, expected: list[str], found: list[dict], note: str = "") -> Line:
        return Line(line, src_lines[line - 1].strip(), expected,
                    [describe_finding(f) for f in found], note)

    def peer_limit(line: int, own_comment: bool) -> str | None:
        text = (src_lines[line - 1] if own_comment else "") + " " + facts.notes.get(line, "")
        m = PEER_LIMIT.search(text)
        return m.group(0) if m else None

    for line, codes in sorted(ev.expected.items()):
        wanted = {FAMILY_CODE[c] for c in codes}
        here = on_line.get(line, [])
        hits = [f for f in here if f["code"] in wanted]
        if limit := peer_limit(line, own_comment=False):
            state = "flagged" if hits else "not flagged"
            res.peer_quirks.append(make(line, codes, here, f"{state}; peer: \"{limit}\""))
            continue
        res.expected += 1
        for code in codes:
            counts = res.by_code.setdefault(code, [0, 0])
            counts[0] += 1
            counts[1] += 1 if hits else 0
        if hits:
            note = f"partial: {len(hits)} of {len(codes)}" if len(hits) < len(codes) else ""
            res.flagged.append(make(line, codes, hits, note))
            continue
        notes = []
        if here:
            notes.append("other code here: " + ", ".join(sorted({f["code"] for f in here})))
        spans = [f for fs in on_line.values() for f in fs if f["code"] in wanted
                 and f["line"] < line <= f.get("endLine", f["line"])]
        if spans:
            notes.append("a finding at line " + ", ".join(str(f["line"]) for f in spans)
                         + " spans it")
        unbound = unbound_roots(src_lines[line - 1].split("#", 1)[0], facts)
        if unbound:
            notes.append(", ".join(f"`{n}`" for n in unbound)
                         + " never imported or defined in the file")
        res.missed.append(make(line, codes, here, "; ".join(notes)))

    enabled = set(ev.enabled)
    for line, here in sorted(on_line.items()):
        unexpected = [f for f in here if f["code"] in FP_CODES]
        if line in ev.expected or not unexpected:
            continue
        code_part = src_lines[line - 1].split("#", 1)[0]
        names = [reported_name(f) for f in unexpected]
        other = [kind for kind, codes, text_re, name_re in FAMILY_CALLS
                 if not codes & enabled and line in facts.in_async
                 and ((text_re and re.search(text_re, code_part))
                      or (name_re and any(re.search(name_re, n) for n in names)))]
        if limit := peer_limit(line, own_comment=True):
            res.peer_admits.append(make(line, [], unexpected, f"peer: \"{limit}\""))
        elif other:
            res.other_family.append(make(line, [], unexpected, "/".join(other)))
        elif all(f.get("chain") for f in unexpected):
            res.through_calls.append(make(line, [], unexpected))
        else:
            res.false_positives.append(make(line, [], unexpected))
    return res


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def print_lines(title: str, lines: list[Line]) -> None:
    if not lines:
        return
    print(f"  {title}:")
    for ln in lines:
        extra = [" | ".join(ln.found)] if ln.found else []
        extra += [ln.note] if ln.note else []
        print(f"    L{ln.line:<4} {ln.text}")
        if extra:
            print(f"          -> {' ; '.join(extra)}")


def print_file(res: FileResult) -> None:
    print(f"\n{res.file}  [{res.view}: {res.why}]  enabled: {','.join(res.enabled)}")
    print(f"  expected lines: {res.expected}  flagged: {len(res.flagged)}  "
          f"missed: {len(res.missed)}  false positives: {len(res.false_positives)}")
    print_lines("partially flagged", [ln for ln in res.flagged if ln.note])
    print_lines("missed", res.missed)
    print_lines("false positives", res.false_positives)
    print_lines("expected by the peer where its own comments say it errs (not counted)",
                res.peer_quirks)
    print_lines("flagged where the peer's comments say it should flag but does not "
                "(not counted)", res.peer_admits)
    print_lines("flagged calls of a family this file does not enable (not counted)",
                res.other_family)
    print_lines("flagged through a call the peer does not follow (not counted; judge the chain)",
                res.through_calls)


NOT_COUNTED = {
    "peer_quirks": "expectations the peer documents as its own error",
    "peer_admits": "flagged lines the peer admits missing",
    "other_family": "calls of a family the file does not enable",
    "through_calls": "flagged through a call chain",
}


def totals(results: list[FileResult]) -> dict:
    by_code: dict[str, list[int]] = {}
    for r in results:
        for code, (e, f) in r.by_code.items():
            acc = by_code.setdefault(code, [0, 0])
            acc[0] += e
            acc[1] += f
    return {
        "files": len(results),
        "expected_lines": sum(r.expected for r in results),
        "flagged_lines": sum(len(r.flagged) for r in results),
        "missed_lines": sum(len(r.missed) for r in results),
        "false_positive_lines": sum(len(r.false_positives) for r in results),
        **{key: sum(len(getattr(r, key)) for r in results) for key in NOT_COUNTED},
        "by_code": {c: {"expected": e, "flagged": f} for c, (e, f) in sorted(by_code.items())},
    }


def print_totals(title: str, t: dict) -> None:
    print(f"\n{title}: {t['files']} files; flagged {t['flagged_lines']} of "
          f"{t['expected_lines']} expected lines, missed {t['missed_lines']}; "
          f"false positives {t['false_positive_lines']}")
    apart = [f"{t[key]} {what}" for key, what in NOT_COUNTED.items() if t[key]]
    if apart:
        print("  not counted: " + "; ".join(apart))
    for code, c in t["by_code"].items():
        print(f"  {code} -> {FAMILY_CODE[code]}: {c['flagged']} of {c['expected']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("peer", type=Path, help="extracted flake8-async checkout")
    parser.add_argument("--cli", type=Path, default=DEFAULT_CLI,
                        help="persist-audit CLI (default: dist/src/main.js of this checkout)")
    parser.add_argument("--json", type=Path, help="write every file's lines and the totals here")
    parser.add_argument("--import-unbound", action="store_true",
                        help="first import the stdlib modules an eval file uses without "
                             "importing them (a variant: the peer's files are scored as written "
                             "by default)")
    args = parser.parse_args()

    cli = args.cli.resolve()
    if not cli.is_file():
        print(f"no persist-audit CLI at {cli} (npm run build first)", file=sys.stderr)
        return 2
    eval_dir = args.peer / "tests" / "eval_files"
    if not eval_dir.is_dir():
        print(f"missing {eval_dir}: is {args.peer} a flake8-async checkout?", file=sys.stderr)
        return 2

    files = [ev for p in sorted(eval_dir.glob("*.py")) if (ev := read_eval_file(p))]
    if args.import_unbound:
        for ev in files:
            import_unbound(ev)
    results: list[FileResult] = []
    try:
        for ev in files:
            results.append(compare(ev, scan(cli, ev.path.name, ev.content)))
    except CliError as exc:
        print(f"persist-audit failed: {exc}", file=sys.stderr)
        return 2

    counted = [r for r in results if r.view != "trio/anyio only"]
    apart = [r for r in results if r.view == "trio/anyio only"]
    print("asyncio view (counted)")
    for r in counted:
        print_file(r)
    if apart:
        print("\n\ntrio/anyio only (NOASYNCIO files with an _asyncio twin; not counted)")
        for r in apart:
            print_file(r)

    summary = {"asyncio": totals(counted), "trio_anyio_only": totals(apart)}
    print_totals("TOTAL asyncio view", summary["asyncio"])
    if apart:
        print_totals("trio/anyio only (not counted)", summary["trio_anyio_only"])

    if args.json:
        args.json.write_text(json.dumps({
            "peer": "flake8-async", "cli": str(cli), "codeMap": FAMILY_CODE,
            "totals": summary, "files": [asdict(r) for r in results],
        }, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
