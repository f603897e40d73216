"""Just enough of Bicep's grammar to check infra/ without the Bicep CLI (which needs network).

``code(text)`` blanks strings and comments, so braces and colons inside them do not count; the
rest reads declarations: parameters (and whether they have a default), modules with the
parameters they pass, outputs, and the keys of an object literal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


def code(text: str) -> str:
    """``text`` with every string literal replaced by ``''`` and every comment by nothing."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c == "'":
            i += 1
            while i < n and text[i] != "'":
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append("''")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def block(text: str, start: int) -> str:
    """The text between the ``{`` or ``[`` at ``start`` and its match."""
    opening = text[start]
    closing = {"{": "}", "[": "]"}[opening]
    depth = 0
    for i in range(start, len(text)):
        if text[i] == opening:
            depth += 1
        elif text[i] == closing:
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    raise ValueError(f"unbalanced {opening} at {start}")


def keys(body: str) -> list[str]:
    """The top-level keys of an object literal's body (``{`` ... ``}`` without the braces)."""
    found: list[str] = []
    depth = 0
    for line in body.splitlines():
        stripped = line.strip()
        if depth == 0:
            match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*|'')\s*:", stripped)
            if match:
                found.append(match[1])
        depth += stripped.count("{") + stripped.count("[") + stripped.count("(")
        depth -= stripped.count("}") + stripped.count("]") + stripped.count(")")
    return found


@dataclass(frozen=True)
class Module:
    name: str
    source: str
    passed: tuple[str, ...]


@dataclass(frozen=True)
class Bicep:
    path: Path
    raw: str

    @classmethod
    def read(cls, path: Path) -> Bicep:
        return cls(path, path.read_text())

    @property
    def code(self) -> str:
        return code(self.raw)

    def params(self) -> dict[str, bool]:
        """Parameter name -> whether it has a default (and so may be left out)."""
        found: dict[str, bool] = {}
        for match in re.finditer(r"^param\s+(\w+)\s+\w+(\s*=)?", self.raw, re.MULTILINE):
            found[match[1]] = bool(match[2])
        return found

    def secure_params(self) -> set[str]:
        return set(re.findall(r"@secure\(\)\s*(?:@[^\n]*\n\s*)*param\s+(\w+)", self.raw))

    def modules(self) -> list[Module]:
        found: list[Module] = []
        pattern = r"^module\s+(\w+)\s+'([^']+)'\s*=\s*(?:if\s*\([^)]*\)\s*)?\{"
        for match in re.finditer(pattern, self.raw, re.MULTILINE):
            stripped = code(self.raw[match.end() - 1 :])
            body = block(stripped, 0)
            params = re.search(r"^\s*params\s*:\s*\{", body, re.MULTILINE)
            passed = keys(block(body, params.end() - 1)) if params else []
            found.append(Module(match[1], match[2], tuple(passed)))
        return found

    def outputs(self) -> dict[str, str]:
        """Output name -> its expression (to the end of the line, or of the literal it opens)."""
        found: dict[str, str] = {}
        for match in re.finditer(r"^output\s+(\w+)\s+\w+\s*=\s*(.*)$", self.raw, re.MULTILINE):
            expression = match[2]
            if expression.rstrip().endswith(("{", "(")):
                rest = self.raw[match.start(2) :]
                expression = rest[: rest.find("\n}") + 2] if "\n}" in rest else rest
                expression = rest[: rest.find("\n})") + 3] if "\n})" in rest else expression
            found[match[1]] = expression
        return found

    def object_keys(self, variable: str) -> list[str]:
        """The keys of ``var <variable> = { ... }``."""
        stripped = self.code
        match = re.search(rf"^var\s+{variable}\s*=\s*\{{", stripped, re.MULTILINE)
        if not match:
            raise KeyError(f"no object variable {variable} in {self.path}")
        return keys(block(stripped, match.end() - 1))
