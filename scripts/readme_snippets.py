#!/usr/bin/env python3
"""Prints a README code block marked ``<!-- ray-snippet: NAME ... -->`` (the fenced block
right after the marker), so that CI runs the README's own text, unchanged.

  scripts/readme_snippets.py NAME             the block's code
  scripts/readme_snippets.py NAME --expected  what its print() lines say they print: the
                                              text of each "print(...)  # TEXT" comment

Exits 1 with one line on stderr when the marker or its block is missing.
"""

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"<!-- ray-snippet: (?P<name>[\w-]+)[^>]*-->\n```\w*\n(?P<code>.*?)\n```", re.DOTALL)
PRINT_COMMENT = re.compile(r"^\s*print\(.*\)\s+#\s*(?P<text>.+?)\s*$")


def snippet(name, text):
    for found in BLOCK.finditer(text):
        if found.group("name") == name:
            return found.group("code") + "\n"
    raise LookupError(f"README.md has no block marked '<!-- ray-snippet: {name}'")


def expected_prints(code):
    return [m.group("text") for line in code.splitlines() if (m := PRINT_COMMENT.match(line))]


def main(argv):
    if len(argv) not in (1, 2) or (len(argv) == 2 and argv[1] != "--expected"):
        print("usage: readme_snippets.py NAME [--expected]", file=sys.stderr)
        return 2
    try:
        code = snippet(argv[0], README.read_text())
    except LookupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    sys.stdout.write("\n".join(expected_prints(code)) + "\n" if len(argv) == 2 else code)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
