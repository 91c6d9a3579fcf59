#!/usr/bin/env python3
"""The GCC 12 co_await rule (docs/architecture.md section 15), checked.

GCC 12 destroys some temporaries twice when a coroutine frame is destroyed
while suspended at the co_await whose full-expression holds them. This lint
reports the two shapes of that rule that can be seen without type
information, anywhere in a statement that contains co_await:

  * a lambda whose captures are not all by reference (`[name]`, `[=]`,
    `[x = std::move(y)]`, `[*this]`): its closure may own non-trivial
    captures. `[&]`, `[&name]` and `[this]` are fine.
  * a braced temporary: `Type{...}`, `Type<...>{...}` or a bare braced list
    `{...}` passed as an argument (`ActivityOptions{.start_to_close = 5s}`).

Named locals are always fine: build the value first, then co_await with it.
The third shape of the rule, a defaulted argument of non-trivial type, needs
the callee's declaration; the SDK avoids it (overloads instead of defaults)
and the rule's text asks authors to do the same.

  coroutine_lint.py FILE...     exit 1 and one line per finding when any
"""
import re
import sys

KEYWORDS = {"return", "co_return", "co_yield", "co_await", "if", "while", "for", "switch", "else", "do",
            "case", "throw", "new", "delete", "sizeof", "decltype", "noexcept", "requires", "and", "or", "not"}


def strip(text):
    """Comments and literal contents become spaces; offsets and newlines stay."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "R" and text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'R"([^()\\ ]{0,16})\(', text[i:])
            if not m:
                out.append(c)
                i += 1
                continue
            end = text.find(")" + m.group(1) + '"', i)
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append('""' + re.sub(r"[^\n]", " ", text[i + 2:j]))
            i = j
        elif c in "\"'":
            if c == "'" and i > 0 and text[i - 1].isalnum():  # digit separator: 1'000
                out.append(c)
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + " " * (j - i - 2) + c if j - i >= 2 else text[i:j])
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def statement_bounds(code, at):
    """The statement around the co_await at offset `at`."""
    depth = 0
    start = at
    while start > 0:
        c = code[start - 1]
        if c in ")]":
            depth += 1
        elif c in "([":
            depth -= 1  # an unmatched "(": we are in an if/while condition or a call
        elif c == "}":
            if depth <= 0:
                break
            depth += 1
        elif c == "{":
            if depth <= 0:
                break
            depth -= 1
        elif c == ";" and depth <= 0:
            break
        start -= 1
    depth = 0
    end = at
    n = len(code)
    while end < n:
        c = code[end]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                break  # the end of an if/while condition
            depth -= 1
        elif c == ";" and depth == 0:
            break
        end += 1
    return start, end


def matching(code, i, open_c, close_c):
    depth = 0
    for j in range(i, len(code)):
        if code[j] == open_c:
            depth += 1
        elif code[j] == close_c:
            depth -= 1
            if depth == 0:
                return j
    return len(code) - 1


LAMBDA_INTRO = re.compile(r"\[([^\[\]]*)\]\s*(?=\(|\{|mutable\b|->|<)")
BRACED = re.compile(r"(?:\b([A-Za-z_][\w:]*)\s*(<[^;{}()]*>)?\s*|([(,]\s*))\{")


def by_reference_only(captures):
    items = [c.strip() for c in captures.split(",") if c.strip()]
    return all(c == "&" or c == "this" or re.fullmatch(r"&\s*[A-Za-z_]\w*(\s*=.*)?", c) for c in items)


def check_statement(code, start, end):
    """Findings (offset, message) in code[start:end]."""
    findings = []
    text = code[start:end]
    blank = list(text)
    for m in LAMBDA_INTRO.finditer(text):
        before = text[:m.start()].rstrip()
        if before and (before[-1].isalnum() or before[-1] in "_)]"):
            continue  # a subscript, not a lambda
        if not by_reference_only(m.group(1)):
            findings.append((start + m.start(), f"lambda with captures [{m.group(1).strip()}] inside a co_await "
                                                "statement: capture by reference or name the lambda first"))
        # The body is another function: its braces are not temporaries here.
        body = text.find("{", m.end())
        if body >= 0:
            close = matching(text, body, "{", "}")
            for k in range(m.start(), close + 1):
                if blank[k] != "\n":
                    blank[k] = " "
    rest = "".join(blank)
    for m in BRACED.finditer(rest):
        name = m.group(1)
        if name is not None and name in KEYWORDS:
            continue
        what = f"{name}{m.group(2) or ''}{{...}}" if name else "{...}"
        findings.append((start + m.end() - 1, f"braced temporary {what} inside a co_await statement: "
                                              "make it a named local first"))
    return findings


def lint(path):
    with open(path, encoding="utf-8") as f:
        code = strip(f.read())
    seen = set()
    findings = []
    for m in re.finditer(r"\bco_await\b", code):
        start, end = statement_bounds(code, m.start())
        if (start, end) in seen:
            continue
        seen.add((start, end))
        for offset, message in check_statement(code, start, end):
            line = code.count("\n", 0, offset) + 1
            findings.append((line, message))
    return sorted(set(findings))


def main(argv):
    if not argv:
        print("coroutine_lint: no sources given")
        return 1
    status = 0
    for path in argv:
        try:
            findings = lint(path)
        except OSError as e:
            print(f"coroutine_lint: {path}: {e.strerror}")
            status = 1
            continue
        for line, message in findings:
            print(f"{path}:{line}: {message}")
            status = 1
    if status:
        print("coroutine_lint: GCC 12 destroys such temporaries twice when a suspended workflow is evicted "
              "(docs/architecture.md, section 15)")
    else:
        print(f"coroutine_lint: {len(argv)} sources are clean")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
