#!/usr/bin/env python3
"""The repository stands on its own: no file it ships points outside it, every `docs/<page>.md`
that code or docs cite exists, every section number cited from docs/design.md, docs/style.md or
docs/stage2.md exists there, every relative markdown link resolves, and README.md stays under 12 KB
(the two commands first; detail lives in docs/).

Usage: check_self_contained.py SOURCE_DIR. Exits 1 with one line per problem.
"""
import os
import re
import sys

root = os.path.abspath(sys.argv[1])
problems = []
TREES = ["src", "include", "tests", "configs", "scripts", "slurm", "bench", "analysis", "cmake", "jobs", "docs",
         ".ci", "README.md", "CMakeLists.txt", "CMakePresets.json"]
SKIP = [os.path.join("tests", "fixtures")]  # the Hugging Face fixture's own README is kept as made
TEXT = (".cpp", ".h", ".py", ".sh", ".ini", ".cmake", ".txt", ".md", ".job", ".sbatch", ".json", "run")


def files():
    for tree in TREES:
        path = os.path.join(root, tree)
        if os.path.isfile(path):
            yield path
            continue
        for d, _, names in os.walk(path):
            if any(os.path.relpath(d, root).startswith(s) for s in SKIP) or "__pycache__" in d:
                continue
            for n in names:
                if n.endswith(TEXT):
                    yield os.path.join(d, n)


def section_numbers(page):
    text = open(os.path.join(root, "docs", page), encoding="utf-8").read()
    numbers = set(re.findall(r"^#+ (\d+)\.", text, re.M))          # "## 2. Shape of the system"
    numbers |= set(re.findall(r"^(\d+)\. \*\*", text, re.M))        # "7. **Each C return code ...**"
    return numbers


# The workbench beside a checkout (its name, its fixtures, its notes), written so that this file
# itself does not match a grep for the workbench folder name followed by a slash.
WORKBENCH = re.compile(r"\.\./shared\b|\bshared[\\/]fixtures|\b(DESIGN|STYLE|STAGE2|INFRA)\.md")
this = os.path.abspath(__file__)
sections = {p: section_numbers(p) for p in ("design.md", "style.md", "stage2.md")
            if os.path.exists(os.path.join(root, "docs", p))}
for path in files():
    if os.path.abspath(path) == this:
        continue
    rel = os.path.relpath(path, root)
    text = open(path, encoding="utf-8", errors="replace").read()
    for n, line in enumerate(text.splitlines(), 1):
        if WORKBENCH.search(line):
            problems.append(f"{rel}:{n}: points outside the repository: {line.strip()[:100]}")
        for page, number in re.findall(r"docs/([a-z0-9-]+\.md)(?: §(\d+))?", line):
            if not os.path.exists(os.path.join(root, "docs", page)):
                problems.append(f"{rel}:{n}: cites docs/{page}, which does not exist")
            elif number and page in sections and number not in sections[page]:
                problems.append(f"{rel}:{n}: cites docs/{page} §{number}, which has no such section")
    if rel.endswith(".md"):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            if not os.path.exists(os.path.normpath(os.path.join(os.path.dirname(path), target))):
                problems.append(f"{rel}: link to {target}, which does not exist")

size = os.path.getsize(os.path.join(root, "README.md"))
if size > 12 * 1024:
    problems.append(f"README.md: {size} bytes, over 12 KB: move detail to docs/")

for p in problems:
    print(p)
print(f"self-contained: {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
