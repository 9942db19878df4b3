"""Text that zoo shows but did not write (a registry file's help, a model card, a plugin's error, a folder's name),
made safe for a terminal: written out, its control characters cannot move the cursor, rewrite the screen or retitle
the window. Rich's tables take it as plain text, never as markup."""

from __future__ import annotations

import re

#: Control characters but tab and newline.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with its control characters written out (\\x1b), and the invisible ones that reorder or hide text
    (right-to-left overrides, zero-width spaces: \\u202e); tabs and newlines kept."""
    text = CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)
    if text.isprintable() or all(c.isprintable() or c in "\t\n" for c in text):
        return text
    return "".join(c if c.isprintable() or c in "\t\n" else f"\\u{ord(c):04x}" for c in text)


def one_line(text: str, limit: int = 200) -> str:
    """printable(text) on one line of at most `limit` characters (a table's cell)."""
    text = printable(" ".join(text.splitlines()).replace("\t", " "))
    return text if len(text) <= limit else text[: limit - 1] + "…"
