"""infra/'s Bicep files read with the language's own grammar (tree-sitter-bicep), not by hand.

The Bicep CLI cannot be installed offline; its grammar can. ``read(path)`` parses a file and
refuses one with a syntax error (naming the line), then gives its declarations: parameters with
their decorators and defaults, variables, modules with the parameters they pass, resources and
outputs, each as a syntax node. ``value()`` turns a literal (string without interpolation,
number, bool, null, array, object) into Python; ``identifiers()`` and ``calls()`` say what an
expression refers to.

The parsers are test tools (requirements-dev.txt): ``need()`` skips a test without one, and
fails it where CI is set, so that CI never passes by checking nothing.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def need(module: str, package: str | None = None) -> ModuleType:
    """``module``, imported; without it, a skip here and a failure where CI is set."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        reason = f"{package or module} is not installed (pip install -r requirements-dev.txt): {exc}"
        if "CI" in os.environ:
            pytest.fail(reason)
        pytest.skip(reason)


@cache
def _parser() -> Any:
    tree_sitter = need("tree_sitter")
    grammar = need("tree_sitter_bicep", "tree-sitter-bicep")
    return tree_sitter.Parser(tree_sitter.Language(grammar.language()))


def text(node: Any) -> str:
    return str(node.text.decode())


def value(node: Any) -> Any:
    """The Python value of a literal node; ValueError for anything computed."""
    kind = node.type
    if kind == "string":
        if any(part.type == "interpolation" for part in node.named_children):
            raise ValueError(f"not a literal: {text(node)}")
        return string(node, lambda part: "")
    if kind == "number":
        return int(text(node))
    if kind == "boolean":
        return text(node) == "true"
    if kind == "null":
        return None
    if kind == "array":
        return [value(item) for item in node.named_children if item.type != "comment"]
    if kind == "object":
        return {key: value(item) for key, item in properties(node).items()}
    if kind == "parenthesized_expression":
        return value(node.named_children[0])
    raise ValueError(f"not a literal ({kind}): {text(node)}")


ESCAPES = {"\\'": "'", "\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}


def string(node: Any, interpolate: Any) -> str:
    """A string literal's value, read from its source (the grammar leaves some spaces out of its
    parts), with escapes decoded and each ``${...}`` replaced by ``interpolate(part)``."""
    if text(node).startswith("'''"):
        return text(node)[3:-3]
    source = node.text
    start, end = node.start_byte + 1, node.end_byte - 1
    out, at = [], start
    for part in node.named_children:
        if part.type == "interpolation":
            out.append(_unescape(source[at - node.start_byte : part.start_byte - node.start_byte].decode()))
            out.append(interpolate(part))
            at = part.end_byte
    out.append(_unescape(source[at - node.start_byte : end - node.start_byte].decode()))
    return "".join(out)


def _unescape(chunk: str) -> str:
    return re.sub(r"\\(u\{[0-9A-Fa-f]+\}|.)", lambda m: _escape(m[0]), chunk)


def _escape(sequence: str) -> str:
    if sequence.startswith("\\u{"):
        return chr(int(sequence[3:-1], 16))
    return ESCAPES.get(sequence, sequence)


def properties(node: Any) -> dict[str, Any]:
    """An object literal's keys and their value nodes, in order."""
    if node.type != "object":
        raise ValueError(f"not an object ({node.type}): {text(node)[:80]}")
    found: dict[str, Any] = {}
    for prop in node.named_children:
        if prop.type != "object_property" or not any(child.type == ":" for child in prop.children):
            continue  # a comment, or a nested resource
        key, *rest = [child for child in prop.children if child.type not in ("comment", ":")]
        name = value(key) if key.type == "string" else text(key)
        found[name] = rest[-1]
    return found


def walk(node: Any) -> list[Any]:
    out = [node]
    for child in node.named_children:
        out += walk(child)
    return out


def identifiers(node: Any) -> set[str]:
    """Names an expression refers to (not property names after a dot, nor object keys)."""
    found = set()
    for item in walk(node):
        if item.type == "identifier":
            parent = item.parent
            if parent is not None and parent.type == "object_property" and parent.named_children[0] == item:
                continue
            found.add(text(item))
    return found


def calls(node: Any) -> list[tuple[str, Any]]:
    """The function calls in an expression: (name, the call's node)."""
    found = []
    for item in walk(node):
        if item.type == "call_expression":
            found.append((text(item.named_children[0]), item))
    return found


def arguments(call: Any) -> list[Any]:
    args = next(child for child in call.named_children if child.type == "arguments")
    return [arg for arg in args.named_children if arg.type != "comment"]


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any | None  # the default's node, or None
    decorators: dict[str, list[Any]] = field(default_factory=dict)  # name -> argument nodes

    def decorator(self, name: str) -> list[Any]:
        """The literal arguments of ``@name(...)``."""
        return [value(arg) for arg in self.decorators[name]]


@dataclass(frozen=True)
class Module:
    name: str
    source: str
    body: Any
    passed: tuple[str, ...]

    def params(self) -> dict[str, Any]:
        body = properties(self.body)
        return properties(body["params"]) if "params" in body else {}


@dataclass(frozen=True)
class Bicep:
    path: Path
    raw: str
    root: Any

    @classmethod
    def read(cls, path: Path) -> Bicep:
        raw = path.read_text()
        tree = _parser().parse(raw.encode())
        if tree.root_node.has_error:
            bad = next(n for n in walk(tree.root_node) if n.type == "ERROR" or n.is_missing or n.has_error)
            while bad.named_children and any(c.has_error for c in bad.named_children):
                bad = next(c for c in bad.named_children if c.has_error)
            line = bad.start_point[0] + 1
            raise SyntaxError(f"{path}:{line}: not Bicep: {raw.splitlines()[line - 1].strip()}")
        return cls(path, raw, tree.root_node)

    def declarations(self, kind: str) -> list[tuple[Any, dict[str, list[Any]]]]:
        """Top-level ``kind`` nodes, each with the decorators written above it."""
        found = []
        decorators: dict[str, list[Any]] = {}
        for node in self.root.named_children:
            if node.type == "comment":
                continue
            if node.type == "decorators":
                for decorator in node.named_children:
                    call = decorator.named_children[0]
                    name = text(call.named_children[0]) if call.type == "call_expression" else text(call)
                    decorators[name] = arguments(call) if call.type == "call_expression" else []
                continue
            if node.type == kind:
                found.append((node, decorators))
            decorators = {}
        return found

    def parameters(self) -> dict[str, Param]:
        found = {}
        for node, decorators in self.declarations("parameter_declaration"):
            name, kind, *rest = [c for c in node.named_children if c.type != "comment"]
            found[text(name)] = Param(text(name), text(kind), rest[-1] if rest else None, decorators)
        return found

    def params(self) -> dict[str, bool]:
        """Parameter name -> whether it has a default (and so may be left out)."""
        return {name: param.default is not None for name, param in self.parameters().items()}

    def secure_params(self) -> set[str]:
        return {name for name, param in self.parameters().items() if "secure" in param.decorators}

    def variables(self) -> dict[str, Any]:
        """Variable name -> its expression's node."""
        found = {}
        for node, _ in self.declarations("variable_declaration"):
            children = [c for c in node.named_children if c.type != "comment"]
            found[text(children[0])] = children[-1]
        return found

    def modules(self) -> list[Module]:
        found = []
        for node, _ in self.declarations("module_declaration"):
            name, source, *rest = [c for c in node.named_children if c.type != "comment"]
            body = rest[-1]
            if body.type == "if_statement":
                body = body.named_children[-1]
            module = Module(text(name), value(source), body, ())
            found.append(Module(module.name, module.source, body, tuple(module.params())))
        return found

    def resources(self) -> list[tuple[str, str, Any]]:
        """Every resource, nested ones too: (symbolic name, type@version or child type, body)."""
        found = []
        for node in walk(self.root):
            if node.type != "resource_declaration":
                continue
            name, kind, *rest = [c for c in node.named_children if c.type != "comment"]
            body = rest[-1]
            if body.type == "if_statement":
                body = body.named_children[-1]
            if body.type == "for_statement":
                body = next(c for c in body.named_children if c.type == "object")
            found.append((text(name), value(kind), body))
        return found

    def outputs(self) -> dict[str, Any]:
        """Output name -> its expression's node."""
        found = {}
        for node, _ in self.declarations("output_declaration"):
            children = [c for c in node.named_children if c.type != "comment"]
            found[text(children[0])] = children[-1]
        return found

    def object_keys(self, variable: str) -> list[str]:
        """The keys of ``var <variable> = { ... }``."""
        return list(properties(self.variables()[variable]))


class Fail(Exception):
    """A deployment stopped by Bicep's ``fail(message)``."""


def _split(value: str, separator: Any) -> list[str]:
    if isinstance(separator, list):
        parts = [value]
        for sep in separator:
            parts = [piece for part in parts for piece in part.split(sep)]
        return parts
    return value.split(separator)


def _unquote(value: str) -> str:
    from urllib.parse import unquote

    return unquote(value)


#: The ARM functions infra/'s expressions use, as ARM documents them (startsWith ignores case).
FUNCTIONS: dict[str, Any] = {
    "toUpper": str.upper,
    "toLower": str.lower,
    "contains": lambda container, item: item in container,
    "startsWith": lambda value, prefix: value.lower().startswith(prefix.lower()),
    "empty": lambda value: not value,
    "length": len,
    "filter": lambda items, keep: [item for item in items if keep(item)],
    "map": lambda items, each: [each(item) for item in items],
    "objectKeys": lambda value: list(value),
    "join": lambda items, separator: separator.join(items),
    "split": _split,
    "replace": lambda value, old, new: value.replace(old, new),
    "substring": lambda value, start, length=None: (
        value[start:] if length is None else value[start : start + length]
    ),
    "indexOf": lambda value, item: value.find(item),
    "uriComponentToString": _unquote,
    "toObject": lambda items, key, value=(lambda item: item): {key(item): value(item) for item in items},
    "union": lambda *objects: {k: v for obj in objects for k, v in obj.items()},
}


def evaluate(bicep: Bicep, node: Any, scope: dict[str, Any]) -> Any:
    """The value of an expression of ``bicep``, given its parameters' values in ``scope``.

    Just the part of the language infra/'s settings expressions use: literals, variables,
    lambdas, the operators ``? :``, ``||``, ``&&``, ``==``, ``!=``, ``!``, property access and
    the functions in FUNCTIONS; ``fail(message)`` raises Fail. Anything else is a ValueError.
    """
    kind = node.type
    children = [c for c in node.named_children if c.type != "comment"]
    if kind == "string":
        return string(node, lambda part: str(evaluate(bicep, part.named_children[0], scope)))
    if kind in ("number", "boolean", "null"):
        return value(node)
    if kind == "array":
        return [evaluate(bicep, item, scope) for item in children]
    if kind == "object":
        return {key: evaluate(bicep, item, scope) for key, item in properties(node).items()}
    if kind == "parenthesized_expression":
        return evaluate(bicep, children[0], scope)
    if kind == "identifier":
        name = text(node)
        if name in scope:
            return scope[name]
        variables = bicep.variables()
        if name in variables:
            return evaluate(bicep, variables[name], scope)
        raise ValueError(f"{name} is neither given nor a variable of {bicep.path.name}")
    if kind == "member_expression":
        target, name = evaluate(bicep, children[0], scope), text(children[1])
        if callable(target):  # the grammar reads `x => x.name` as `(x => x).name`
            return lambda *args: target(*args)[name]
        return target[name]
    if kind == "lambda_expression":
        *names, body = children
        return lambda *args: evaluate(
            bicep, body, {**scope, **{text(n): a for n, a in zip(names, args, strict=True)}}
        )
    if kind == "ternary_expression":
        test, yes, no = children
        return evaluate(bicep, yes if evaluate(bicep, test, scope) else no, scope)
    if kind == "unary_expression":
        return not evaluate(bicep, children[0], scope)
    if kind == "binary_expression":
        operator = next(text(c) for c in node.children if not c.is_named)
        left = evaluate(bicep, children[0], scope)
        if operator == "||":
            return left or evaluate(bicep, children[1], scope)
        if operator == "&&":
            return left and evaluate(bicep, children[1], scope)
        right = evaluate(bicep, children[1], scope)
        if operator in ("==", "!="):
            return (left == right) == (operator == "==")
        if operator in ("+", "-") and isinstance(left, int) and isinstance(right, int):
            return left + right if operator == "+" else left - right
        raise ValueError(f"operator {operator} in {text(node)}")
    if kind == "call_expression":
        name = text(children[0])
        args = [evaluate(bicep, arg, scope) for arg in arguments(node)]
        if name == "fail":
            raise Fail(args[0])
        if name not in FUNCTIONS:
            raise ValueError(f"function {name} in {text(node)[:80]}")
        return FUNCTIONS[name](*args)
    raise ValueError(f"{kind}: {text(node)[:80]}")
