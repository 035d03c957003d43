#!/usr/bin/env python3
"""Checks that every "SPEC §N" cited in the repository names a section of docs/spec.md.

Scans the Rust, Markdown, JavaScript, Python and shell sources (not target/ or node_modules/)
for "SPEC §2.1"-style citations and looks each number up among docs/spec.md's headings
("## 2. ..." or "### 2.1 ..."). Exits 1 naming the file, line and section of each citation
that resolves nowhere. Run from the repository root (scripts/check.sh does).
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CITE = re.compile(r"SPEC §(\d+(?:\.\d+)*)")
HEADING = re.compile(r"^#{2,4}\s+(\d+(?:\.\d+)*)\.?\s")


def main():
    with open(os.path.join(ROOT, "docs", "spec.md"), encoding="utf-8") as f:
        sections = {m.group(1) for line in f if (m := HEADING.match(line))}
    bad, cited = [], 0
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in ("target", "node_modules", ".git")]
        for name in filenames:
            if not name.endswith((".rs", ".md", ".js", ".mjs", ".py", ".sh")):
                continue
            path = os.path.join(dirpath, name)
            with open(path, encoding="utf-8", errors="replace") as f:
                for no, line in enumerate(f, 1):
                    for m in CITE.finditer(line):
                        cited += 1
                        if m.group(1) not in sections:
                            bad.append(f"{os.path.relpath(path, ROOT)}:{no}: SPEC §{m.group(1)}")
    if bad:
        print("citations of sections docs/spec.md does not have:", *bad, sep="\n  ")
        sys.exit(1)
    print(f"{cited} citations of docs/spec.md, every one a section it has ({len(sections)} sections)")


if __name__ == "__main__":
    main()
