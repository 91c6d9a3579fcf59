#!/usr/bin/env python3
"""Runs the command blocks of Markdown docs against a fresh `itinera dev`.

    run_docs.py ITINERA_BINARY DOC.md [DOC.md...]

The docs are read as a newcomer reads them: in order, every command in one
shell session, against one `itinera dev` that this script starts in a temp
dir (which holds a `build` link to the binary's build tree, so that paths
written from the repository root, such as `build/tools/itinera`, work) and
stops at the end. The output each command prints is compared with the
output the doc shows; a doc that no longer matches fails with a diff.

What is a command block. Every fenced block without a language, or with
`console`, `sh`, `shell` or `bash`, must either run or say why not:
- lines starting with `$ ` are commands (continued while a line ends in `\\`
  or a quote is open); the lines up to the next command are its output;
- a block without `$ ` lines needs a directive (below).
Blocks in other languages (cpp, proto, sql, ...) are code, not commands.

Directives are HTML comments, invisible when the Markdown is rendered:
    <!-- docs-test: skip REASON -->        the next block is not run
    <!-- docs-test: output-of CMD -->      the next block is what CMD prints
    <!-- docs-test: dev-output -->         the next block shows `itinera dev`
                                           starting: its output is compared
                                           with what this script's dev printed
    <!-- docs-test: wait-until CMD -->     polls CMD until it exits 0 (the
                                           prose says "a moment later")
    <!-- docs-test: run CMD -->            runs CMD, which must exit 0
    <!-- docs-test: restart-dev [FLAGS] --> stops the dev (SIGTERM) and
                                           starts it again on the same ports
                                           and data dir, with FLAGS added (e.g.
                                           `--token T:TENANT`): its worker
                                           forgets the runs it had in memory
                                           and replays them
A directive may span lines; it ends at `-->`.

Comparing. Both sides are normalized before they are compared: UUIDs,
times, worker identities, byte counts, the 8 hex digits of a run id inside
the sample's reservation ids, amounts in cents (the simulator's fares move),
the dev's data directory and its database port; runs of blanks count as one blank. A shown line that is `...` stands
for any number of lines; `...` inside a line for any text. The ports
127.0.0.1:7233 and 127.0.0.1:7301 in the docs are the dev's real (free)
ports in the commands and are mapped back in what they print.
"""

import ctypes
import difflib
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

COMMAND_LANGS = {"", "console", "sh", "shell", "bash"}
ADMIN_PORT_IN_DOCS = 7233
SUPPLIER_PORT_IN_DOCS = 7301
COMMAND_TIMEOUT_S = 120
WAIT_TIMEOUT_S = 60
END_MARK = "__ITINERA_DOCS_TEST_END__"


class DocError(Exception):
    """A doc that does not match the software (or cannot be read)."""


# ---------------------------------------------------------------- parsing

class Block:
    def __init__(self, path, line, lang, lines, directive):
        self.path, self.line, self.lang, self.lines, self.directive = path, line, lang, lines, directive

    def where(self):
        return f"{self.path}:{self.line}"


def parse(path):
    """The doc as a list of steps: ('block', Block) and ('directive', kind, arg, where)."""
    with open(path, encoding="utf-8") as f:
        text = f.read().split("\n")
    steps = []
    pending = None  # a directive that applies to the next block
    i = 0
    while i < len(text):
        line = text[i]
        m = re.match(r"^\s*<!--\s*docs-test:\s*(.*)$", line)
        if m:
            start = i
            body = m.group(1)
            while "-->" not in body:
                i += 1
                if i >= len(text):
                    raise DocError(f"{path}:{start + 1}: docs-test directive without -->")
                body += "\n" + text[i]
            body = body[: body.index("-->")].strip()
            kind, _, arg = body.partition(" ")
            arg = arg.strip()
            where = f"{path}:{start + 1}"
            if kind in ("skip", "output-of", "dev-output"):
                pending = (kind, arg, where)
            elif kind in ("wait-until", "run"):
                if not arg:
                    raise DocError(f"{where}: {kind} needs a command")
                steps.append(("directive", kind, arg, where))
            elif kind == "restart-dev":
                steps.append(("directive", kind, arg, where))
            else:
                raise DocError(f"{where}: unknown docs-test directive {kind!r}")
            i += 1
            continue
        m = re.match(r"^(\s*)```\s*([\w+-]*)\s*$", line)
        if m:
            indent, lang = len(m.group(1)), m.group(2)
            start = i
            body = []
            i += 1
            while i < len(text) and not re.match(r"^\s*```\s*$", text[i]):
                body.append(text[i][indent:] if text[i][:indent].strip() == "" else text[i])
                i += 1
            if i >= len(text):
                raise DocError(f"{path}:{start + 1}: code block is not closed")
            block = Block(path, start + 1, lang, body, pending)
            pending = None
            if lang in COMMAND_LANGS:
                steps.append(("block", block))
            elif block.directive is not None:
                raise DocError(f"{block.where()}: a docs-test directive before a {lang} block, which never runs")
            i += 1
            continue
        i += 1
    if pending is not None:
        raise DocError(f"{pending[2]}: directive {pending[0]} is not followed by a code block")
    return steps


def split_commands(block):
    """[(command, [expected output lines])] of a block with `$ ` lines."""
    out = []
    lines = block.lines
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            if not out:
                raise DocError(f"{block.where()}: output before the first `$ ` command")
            out[-1][1].append(lines[i])
            i += 1
            continue
        command = lines[i][2:]
        while command_open(command):
            i += 1
            if i >= len(lines):
                raise DocError(f"{block.where()}: command not finished: {command}")
            command += "\n" + lines[i]
        out.append((command, []))
        i += 1
    return out


def command_open(command):
    if command.endswith("\\"):
        return True
    try:
        shlex.split(command)
    except ValueError:  # an open quote
        return True
    return False


# ---------------------------------------------------------------- comparing

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
CLOCK = re.compile(r"\b\d\d:\d\d:\d\d\.\d+Z")


class Normalizer:
    def __init__(self):
        self.replacements = []  # (literal, replacement), applied first

    def __call__(self, line):
        for literal, replacement in self.replacements:
            line = line.replace(literal, replacement)
        line = UUID.sub("<uuid>", line)
        line = TIMESTAMP.sub("", line)
        line = CLOCK.sub("", line)  # a shown history may omit its time column
        line = re.sub(r"identity=\S+", "identity=<identity>", line)
        line = re.sub(r"worker \S+ serving", "worker <identity> serving", line)
        line = re.sub(r'("history_bytes": ?|"bytes": ?)\d+', r"\g<1><n>", line)
        line = re.sub(r"\bR-[0-9a-f]{8}-", "R-<run>-", line)
        line = re.sub(r'("\w*_cents": ?)\d+', r"\g<1><cents>", line)  # fares move every five minutes
        line = re.sub(r"\bport=\d+", "port=<port>", line)
        return " ".join(line.split())


def matches(expected, actual):
    """Whether the actual lines match the shown ones, with `...` elisions."""
    memo = {}

    def line_matches(e, a):
        if "..." not in e:
            return e == a
        pattern = ".*".join(re.escape(part) for part in e.split("..."))
        return re.fullmatch(pattern, a) is not None

    def go(i, j):
        key = (i, j)
        if key in memo:
            return memo[key]
        if i == len(expected):
            result = j == len(actual)
        elif expected[i] == "...":
            result = any(go(i + 1, k) for k in range(j, len(actual) + 1))
        else:
            result = j < len(actual) and line_matches(expected[i], actual[j]) and go(i + 1, j + 1)
        memo[key] = result
        return result

    return go(0, 0)


def trimmed(lines):
    lines = list(lines)
    while lines and lines[-1] == "":
        lines.pop()
    return lines


# ---------------------------------------------------------------- running

def stop_with_parent():
    """In the child before exec: SIGTERM when this script dies, even by
    SIGKILL (ctest's timeout), so no dev or PostgreSQL outlives the test."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dev:
    """`itinera dev` in `work`, on free ports (or the given ones, when it is
    started again); stopped by stop()."""

    def __init__(self, itinera, work, ports=None, flags=()):
        self.admin_port, self.supplier_port = ports or (free_port(), free_port())
        self.log_path = os.path.join(work, "dev.log")
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [itinera, "dev", "--listen", f"127.0.0.1:{self.admin_port}",
             "--supplier-listen", f"127.0.0.1:{self.supplier_port}", *flags],
            cwd=work, stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL, text=True,
            preexec_fn=stop_with_parent)
        self.stdout = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.stdout.append(line.rstrip("\n"))
            if line.startswith("  try:"):
                self.ready.set()
        self.ready.set()

    def wait_up(self):
        deadline = time.monotonic() + 120
        while not self.ready.wait(0.1):
            if time.monotonic() > deadline:
                raise DocError("itinera dev did not come up in 120 s")
        if self.proc.poll() is not None or not any(l.startswith("  try:") for l in self.stdout):
            raise DocError(f"itinera dev did not start:\n{self.tail()}")
        # The banner comes first; the admin endpoint is up once it accepts.
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.admin_port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise DocError(f"itinera dev's admin endpoint did not come up:\n{self.tail()}")
                time.sleep(0.1)

    def tail(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return "".join(f.readlines()[-30:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Shell:
    """One bash session: what a reader's terminal keeps between commands
    (the working directory, exported variables) carries over."""

    def __init__(self, cwd, env):
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=cwd, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def run(self, command, timeout=COMMAND_TIMEOUT_S):
        """(exit status, output with stderr merged)."""
        script = f"{{\n{command}\n}} </dev/null 2>&1\nprintf '\\n{END_MARK} %d\\n' $?\n"
        self.proc.stdin.write(script.encode())
        self.proc.stdin.flush()
        data = b""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            m = re.search(rb"\n" + END_MARK.encode() + rb" (\d+)\n", data)
            if m:
                return int(m.group(1)), data[: m.start()].decode(errors="replace")
            left = deadline - time.monotonic()
            if left <= 0:
                raise DocError(f"command did not finish in {timeout} s: {command}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise DocError(f"the shell exited during: {command}")
                data += chunk

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)


class Runner:
    def __init__(self, itinera, work, dev):
        self.itinera = itinera
        self.dev = dev
        self.work = work
        self.normalize = Normalizer()
        self.normalize.replacements = [
            (f"127.0.0.1:{dev.admin_port}", f"127.0.0.1:{ADMIN_PORT_IN_DOCS}"),
            (f"127.0.0.1:{dev.supplier_port}", f"127.0.0.1:{SUPPLIER_PORT_IN_DOCS}"),
            (os.path.realpath(work) + "/", "/home/you/itinera/"),
            (work + "/", "/home/you/itinera/"),
        ]
        env = dict(os.environ)
        env.pop("ITINERA_DB", None)
        env.pop("ITINERA_SUPPLIER_URL", None)
        env["PATH"] = os.path.dirname(itinera) + os.pathsep + env.get("PATH", "")
        self.shell = Shell(work, env)
        self.commands = 0
        self.failures = []

    def to_dev_ports(self, command):
        return (command.replace(f"127.0.0.1:{ADMIN_PORT_IN_DOCS}", f"127.0.0.1:{self.dev.admin_port}")
                .replace(f"127.0.0.1:{SUPPLIER_PORT_IN_DOCS}", f"127.0.0.1:{self.dev.supplier_port}"))

    def check(self, where, command, shown, output):
        expected = trimmed(self.normalize(l) for l in shown)
        actual = trimmed(self.normalize(l) for l in output.split("\n"))
        if matches(expected, actual):
            return
        diff = "\n".join(difflib.unified_diff(expected, actual, "shown in the doc", "printed", lineterm=""))
        self.failures.append(f"{where}: `{command}` printed something else (normalized; - doc, + real):\n{diff}")
        print(f"FAIL {where}: {command.splitlines()[0]}", flush=True)

    def run_step(self, step):
        if step[0] == "directive":
            _, kind, arg, where = step
            if kind == "run":
                status, output = self.shell.run(self.to_dev_ports(arg))
                if status != 0:
                    raise DocError(f"{where}: `{arg}` exited {status}:\n{output}")
            elif kind == "restart-dev":
                self.restart_dev(arg, where)
            else:
                self.wait_until(arg, where)
            return
        block = step[1]
        kind, arg, where = block.directive or (None, None, None)
        if kind == "skip":
            if not arg:
                raise DocError(f"{where}: say why the block is skipped")
            return
        if kind == "dev-output":
            commands = split_commands(block)
            if len(commands) != 1 or " dev" not in commands[0][0]:
                raise DocError(f"{block.where()}: dev-output wants one `$ ... itinera dev` command")
            self.check(block.where(), commands[0][0], commands[0][1], "\n".join(self.dev.stdout))
            return
        if kind == "output-of":
            commands = [(arg, block.lines)]
        elif any(l.startswith("$ ") for l in block.lines):
            commands = split_commands(block)
        else:
            raise DocError(f"{block.where()}: a command block without `$ ` lines and without a docs-test "
                           "directive (skip REASON, output-of CMD)")
        for command, shown in commands:
            self.commands += 1
            _, output = self.shell.run(self.to_dev_ports(command))
            self.check(block.where(), command, shown, output)

    def restart_dev(self, flags, where):
        self.dev.stop()
        if self.dev.proc.returncode != 0:
            raise DocError(f"{where}: itinera dev exited {self.dev.proc.returncode} when stopped:\n{self.dev.tail()}")
        # Same ports: the commands' port mapping and the doc's URLs stay valid.
        self.dev = Dev(self.itinera, self.work, (self.dev.admin_port, self.dev.supplier_port), shlex.split(flags))
        self.dev.wait_up()

    def wait_until(self, command, where):
        deadline = time.monotonic() + WAIT_TIMEOUT_S
        while True:
            status, output = self.shell.run(self.to_dev_ports(command))
            if status == 0:
                return
            if time.monotonic() > deadline:
                raise DocError(f"{where}: waited {WAIT_TIMEOUT_S} s for `{command}`; last output:\n{output}")
            time.sleep(0.1)


def main(argv):
    if len(argv) < 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    itinera = os.path.abspath(argv[1])
    docs = argv[2:]
    try:
        plan = [(doc, parse(doc)) for doc in docs]
    except DocError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    # TERM and INT (ctest stopping us, Ctrl-C) end the run through `finally`.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _: sys.exit(128 + signum))
    work = tempfile.mkdtemp(prefix="itinera-docs-")
    # The private PostgreSQL runs as an unprivileged user when we are root.
    os.chmod(work, 0o755)
    os.symlink(os.path.dirname(os.path.dirname(itinera)), os.path.join(work, "build"))
    dev = Dev(itinera, work)
    runner = None
    status = 0
    try:
        dev.wait_up()
        runner = Runner(itinera, work, dev)
        for doc, steps in plan:
            print(f"== {doc}", flush=True)
            for step in steps:
                runner.run_step(step)
        if runner.failures:
            print("\n\n".join(runner.failures), file=sys.stderr)
            print(f"\n{len(runner.failures)} of {runner.commands} commands do not match their docs", file=sys.stderr)
            status = 1
        else:
            print(f"all {runner.commands} commands match their docs")
    except DocError as e:
        if runner is not None and runner.failures:
            print("\n\n".join(runner.failures), file=sys.stderr)
        print(f"error: {e}", file=sys.stderr)
        status = 1
    finally:
        if runner is not None:
            runner.shell.close()
            dev = runner.dev  # restart-dev replaces it
        dev.stop()
        if status != 0:
            print(f"itinera dev's log (tail):\n{dev.tail()}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
