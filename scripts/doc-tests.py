#!/usr/bin/env python3
"""Runs the documentation: every block fenced `sh` or `console` in README.md and under
documentation/, against a live keyward, and fails when one breaks.

    scripts/doc-tests.py path/to/keyward [FILE.md ...]   (default: every file)

How a file is run:

- Each Markdown file gets a fresh directory, a fresh SQLite database (`./keyward.db`, the
  default), a free port and an admin token in `KEYWARD_ADMIN_TOKEN`. `documentation/` and
  `deploy/` are linked into the directory, so paths from the repository root work; `HOME`
  is the directory too, so nothing outside it is written.
- Its blocks run in order in one bash (`set -euo pipefail`), so a variable set in one block
  is there in the next, as it is for a reader who types them in one terminal. A `console`
  block's commands are its lines starting with `$ ` (with their `\\` continuations).
- `keyward` is the binary under test. Three spellings of it are read as `keyward`:
  `cargo run --release --`, `./target/release/keyward` and `target/release/keyward`, and
  `cargo build --release` is taken as done: the binary under test was built from the same
  sources, and a second, optimised build would double the time of the test run.
- The documented address `localhost:8080` (or `127.0.0.1:8080`) becomes a free port, and
  `:8081` (a second server in the same file) another.
- `curl` in a block fails on an HTTP error status, as if given `--fail-with-body`, so a
  refused call fails its block (the examples' own scripts call curl unchanged).
- A command that starts the server (`keyward serve …`) runs in the background; the next
  command waits until the server answers (on the port of its `--listen`, if it has one),
  and the block fails if that server has exited instead. A file that starts no server gets one, started
  before its first block with `--trusted-proxy 127.0.0.1/32` (the examples' services run
  on this machine).
- Output shown in a `console` block is checked against what the command printed: every
  JSON member name shown must be in the output, and every member shown with a literal value
  (true, false, null, or a string without digits or `…`) must have that value; a table
  header's column names must all be there, as words; any other line must be there, with
  `…`, ids (`key_…`), key prefixes and times standing for whatever was printed there.

Exit status 0 when every file passed; otherwise the failing file's script and log are shown.
"""

import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNNABLE = ("sh", "console")
FILE_TIMEOUT_SECONDS = 300


@dataclass
class Command:
    text: str  # one logical command (continuations joined with their newlines)
    expected: list = field(default_factory=list)  # output lines shown under it


@dataclass
class Block:
    path: Path
    line: int  # the fence's line, 1-based
    lang: str
    commands: list


def markdown_files():
    files = [ROOT / "README.md"]
    for path in sorted((ROOT / "documentation").rglob("*.md")):
        if "node_modules" not in path.parts:
            files.append(path)
    return files


def blocks_of(path: Path):
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if not match:
            i += 1
            continue
        indent, lang, start = len(match.group(1)), match.group(2), i
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1
        if lang in RUNNABLE:
            commands = console_commands(body) if lang == "console" else sh_commands(body)
            yield Block(path, start + 1, lang, commands)


def sh_commands(body):
    commands, current = [], []
    for line in body:
        current.append(line)
        if not line.rstrip().endswith("\\"):
            text = "\n".join(current)
            if text.strip():
                commands.append(Command(text))
            current = []
    if current:
        commands.append(Command("\n".join(current)))
    return commands


def console_commands(body):
    commands = []
    continuing = False
    for line in body:
        if continuing:
            commands[-1].text += "\n" + line
            continuing = line.rstrip().endswith("\\")
        elif line.startswith("$ "):
            commands.append(Command(line[2:]))
            continuing = line.rstrip().endswith("\\")
        elif line.strip() and commands:
            commands[-1].expected.append(line)
    return commands


def substitute(text: str, port: int) -> str:
    text = re.sub(r"\b(localhost|127\.0\.0\.1):8080\b", f"127.0.0.1:{port}", text)
    text = re.sub(r"\b(localhost|127\.0\.0\.1):8081\b", f"127.0.0.1:{SECOND_PORT[port]}", text)
    text = text.replace("cargo run --release --", "keyward")
    text = re.sub(r"(?<![\w/])\.?/?target/release/keyward\b", "keyward", text)
    text = re.sub(r"^(\s*)cargo build --release\b", r"\1: cargo build --release", text, flags=re.M)
    return text


def split_comment(line: str):
    """A shell line's code and its trailing comment (a `#` after a blank, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i:]
    return line.rstrip(), ""


def starts_server(text: str) -> bool:
    return re.search(r"(^|[\s;&|(])keyward\s+serve\b", text) is not None


def wait_for_server(port: int) -> str:
    return (
        f"__pid=$!; for __i in $(seq 1 200); do command curl -s -o /dev/null http://127.0.0.1:{port}/healthz && break; "
        f"kill -0 $__pid 2>/dev/null || break; sleep 0.05; done; "
        f"kill -0 $__pid 2>/dev/null && command curl -s -o /dev/null http://127.0.0.1:{port}/healthz "
        f"|| {{ echo 'doc-tests: the server did not start' >&2; exit 1; }}"
    )


def script_for(blocks, port: int, out_dir: Path, start_server: bool) -> str:
    lines = [
        "set -euo pipefail",
        # A refused call fails its block; `command curl` inside the function is curl itself.
        'curl() { command curl --fail-with-body "$@"; }',
    ]
    if start_server:
        lines += [
            "keyward serve --trusted-proxy 127.0.0.1/32 >.server.out 2>.server.log &",
            wait_for_server(port),
        ]
    n = 0
    for block in blocks:
        where = f"{block.path.relative_to(ROOT)}:{block.line}"
        lines.append(f"echo {shlex.quote('::: ' + where)} >&2")
        for command in block.commands:
            text = substitute(command.text, port)
            serve = starts_server(text)
            if serve:
                code, comment = split_comment(text)
                if not code.endswith("&"):
                    text = f"{code} & {comment}".rstrip()
            lines.append(f"echo {shlex.quote('$ ' + text)} >&2")
            if block.lang == "console":
                n += 1
                command.output = out_dir / f"{n}.out"
                lines.append(f"{{ {text}\n}} >{shlex.quote(str(command.output))}")
                lines.append(f"cat {shlex.quote(str(command.output))}")
            else:
                lines.append(text)
            if serve:
                listen = re.search(r"--listen[ =]\S*:(\d+)", text)
                lines.append(wait_for_server(int(listen.group(1)) if listen else port))
    return "\n".join(lines) + "\n"


def literal_pairs(line: str):
    value = r'(true|false|null|"[^"\d…]*")'
    return re.findall(r'"([A-Za-z_][\w]*)":\s*' + value, line)


# What stands for "whatever was printed here" in a shown line: an elision, an id, a key's
# display prefix, a time.
WILDCARDS = re.compile(
    r"…"
    r"|\b(?:key|adk|usr|whk)_[0-9A-Za-z]{2,}…?"
    r"|\b[a-z][a-z0-9]*_(?:live|test)_\w*…?"
    r"|\b\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}Z)?"
)


def line_pattern(shown: str) -> str:
    """A shown line as a pattern over whitespace-flattened output."""
    parts = WILDCARDS.split(" ".join(shown.split()))
    return r"\S*".join(re.escape(part) for part in parts)


def check_output(command: Command, port: int) -> list:
    """The ways the output differs from what the documentation shows; empty when none."""
    actual = command.output.read_text() if command.output.exists() else ""
    flat = " ".join(actual.split())
    problems = []
    for shown in (substitute(line, port) for line in command.expected):
        if '{"' in shown or shown.lstrip().startswith('"'):
            for name in re.findall(r'"([A-Za-z_][\w]*)":', shown):
                if not re.search(rf'"{name}"\s*:', actual):
                    problems.append(f"no member `{name}` in the output")
            for name, value in literal_pairs(shown):
                if not re.search(rf'"{name}"\s*:\s*{re.escape(value)}', actual):
                    problems.append(f"`{name}` is not {value} in the output")
        elif len(re.findall(r"\b[A-Z][A-Z_]+\b", shown)) >= 2 and shown.upper() == shown:
            for column in re.findall(r"\b[A-Z][A-Z_]+(?: [A-Z][A-Z_]+)*\b", shown):
                if not re.search(rf"(?<![\w]){re.escape(column)}(?![\w])", actual):
                    problems.append(f"no column {column} in the output")
        elif not re.search(line_pattern(shown), flat):
            problems.append(f"the output lacks the line {shown.strip()!r}")
    return problems


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SECOND_PORT = {}


def run_file(path: Path, blocks, keyward: Path) -> bool:
    work = Path(tempfile.mkdtemp(prefix="keyward-doc-"))
    try:
        bin_dir = work / ".bin"
        bin_dir.mkdir()
        (bin_dir / "keyward").symlink_to(keyward)
        for name in ("documentation", "deploy"):
            (work / name).symlink_to(ROOT / name)
        out_dir = work / ".out"
        out_dir.mkdir()
        port = free_port()
        SECOND_PORT[port] = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYWARD_")}
        env.update(
            PATH=f"{bin_dir}:{env['PATH']}",
            HOME=str(work),
            KEYWARD_ADMIN_TOKEN=secrets.token_hex(24),
            KEYWARD_LISTEN=f"127.0.0.1:{port}",
            RUST_LOG="warn",
        )
        start_server = not any(starts_server(substitute(c.text, port)) for b in blocks for c in b.commands)
        script = script_for(blocks, port, out_dir, start_server)
        (work / ".script.sh").write_text(script)
        with open(work / ".log", "w") as log:
            process = subprocess.Popen(
                ["bash", str(work / ".script.sh")], cwd=work, env=env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
            try:
                status = process.wait(timeout=FILE_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                status = "timeout"
            finally:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                process.wait()
        problems = []
        if status != 0:
            problems.append(f"the script failed ({'timed out' if status == 'timeout' else f'exit {status}'})")
        else:
            for block in blocks:
                for command in block.commands:
                    for problem in check_output(command, port) if command.expected else []:
                        problems.append(
                            f"{block.path.relative_to(ROOT)}:{block.line}: `{command.text.splitlines()[0]}`: {problem}"
                        )
        name = path.relative_to(ROOT)
        if problems:
            print(f"FAIL {name}")
            for problem in problems:
                print(f"  {problem}")
            print("--- its log (commands and their output):")
            print((work / ".log").read_text())
            for extra in (".server.log",):
                if (work / extra).exists():
                    print(f"--- {extra}:\n{(work / extra).read_text()}")
            return False
        count = sum(len(b.commands) for b in blocks)
        print(f"ok   {name}: {len(blocks)} blocks, {count} commands")
        return True
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    keyward = Path(sys.argv[1]).resolve()
    if not os.access(keyward, os.X_OK):
        print(f"doc-tests: {keyward} is not an executable", file=sys.stderr)
        return 2
    failed = []
    chosen = [Path(arg).resolve() for arg in sys.argv[2:]] or markdown_files()
    for path in chosen:
        blocks = list(blocks_of(path))
        if blocks and not run_file(path, blocks, keyward):
            failed.append(path.relative_to(ROOT))
    if failed:
        print(f"doc-tests: {len(failed)} file(s) failed: {', '.join(map(str, failed))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
