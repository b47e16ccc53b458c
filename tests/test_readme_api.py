"""The README's code (and the public names' docstring examples) against the API, statically.

Every ```python block of README.md, every Python example in the docstrings of the names
``augmentgen/__init__.py`` re-exports (``::`` blocks and ``>>>`` examples), and the inline code
spans of README.md that call augmentgen are parsed with :mod:`ast`, never run. Every call whose
callee resolves statically to augmentgen (``augmentgen.X(...)``, ``from augmentgen... import X``
then ``X(...)``, ``augmentgen.sub.module.Y(...)``, and methods on an object the block built,
``mix = augmentgen.SyntheticMix(...)`` then ``mix.state_dict()``) must name something that
exists and bind to its signature: its keywords exist, its number of positional arguments is
accepted, no required argument is missing, and a string given to a ``Literal[...]`` parameter
(``mode="append"``) or to ``family`` is one it takes. A block that does not parse fails (``...``
as a statement or an argument parses, and stands for code or arguments left out).

Every ``augmentgen <command> --flag value`` line of README.md's ```bash blocks (and inline spans)
must name a real command of :func:`augmentgen.cli.build_parser`, real flags of that command (not
a hidden, renamed spelling), for an option with ``choices`` a valid choice, for an int/float
option a number, for ``--family`` a family, for ``--set KEY=...`` a field of that family's
config. Zoo ids (``augmentgen/<name>``) anywhere in the code must be in ``list_pretrained()``.
Nothing is run but imports.

When this fails, either the README is stale (fix the README), or the API lost something users
were told about (that is a decision: a deprecation, not a silent removal).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import doctest
import importlib
import inspect
import re
import shlex
import textwrap
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import augmentgen
from augmentgen.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PLACEHOLDER = object()  # the value of every argument bound to a signature


# ----------------------------------------------------------------------------- extraction

@dataclass
class Block:
    """A piece of documentation code: where it is (``README.md:L123``), its language and text."""

    where: str
    lang: str  # "python" or "bash"
    code: str
    bare_public_names: bool = False  # docstrings and prose name public objects without an import
    imported_before: dict[str, str] = field(default_factory=dict)  # README imports of earlier blocks

    def __repr__(self) -> str:  # pytest's id
        return self.where


def fenced_blocks(text: str, name: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, each tagged with the line of its opening fence."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^\s*```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, lang, body = i + 1, m.group(1), []
        i += 1
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i])
            i += 1
        i += 1
        blocks.append(Block(f"{name}:L{start}", lang, textwrap.dedent("\n".join(body))))
    return blocks


def readme_blocks() -> tuple[list[Block], list[Block]]:
    """README.md's python blocks (each knowing the augmentgen imports of the blocks above it: the
    README is read top to bottom) and its bash blocks."""
    python, bash, imported = [], [], {}
    for block in fenced_blocks(README.read_text(encoding="utf-8"), "README.md"):
        if block.lang == "python":
            block.imported_before = dict(imported)
            python.append(block)
            try:
                imported.update(augmentgen_imports(ast.parse(block.code)))
            except SyntaxError:
                pass  # reported by the block's own test
        elif block.lang in ("bash", "sh", "shell", "console"):
            bash.append(block)
    return python, bash


def augmentgen_imports(tree: ast.AST) -> dict[str, str]:
    """``{bound name: dotted path}`` of a tree's ``import augmentgen...`` / ``from augmentgen... import``."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "augmentgen":
                    if alias.asname:
                        names[alias.asname] = alias.name
                    else:
                        names[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "augmentgen":
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def inline_spans() -> list[Block]:
    """README.md's inline code spans (outside fences) that run augmentgen: ``augmentgen <command>
    ...`` lines, spans of ``--flags``, and Python spans calling a public object."""
    text = README.read_text(encoding="utf-8")
    # blank the fenced blocks, keeping the line numbers
    prose = re.sub(r"```.*?```", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    spans, per_line = [], {}
    for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", prose):
        span = " ".join(m.group(1).split())
        if re.match(r"augmentgen \w", span) or span.startswith("--"):
            lang = "bash"
        elif "(" in span:
            try:
                ast.parse(span)
            except SyntaxError:
                continue  # prose in backticks, not code
            lang = "python"
        else:
            continue
        line = prose.count("\n", 0, m.start()) + 1
        per_line[line] = per_line.get(line, 0) + 1  # the second code span of a line is L123#2
        where = f"README.md:L{line}" + (f"#{per_line[line]}" if per_line[line] > 1 else "")
        spans.append(Block(where, lang, span, bare_public_names=lang == "python"))
    return spans


def _public_objects() -> list[tuple[str, Any]]:
    objects = [("augmentgen", augmentgen)]
    for name in augmentgen.__all__:
        obj = getattr(augmentgen, name)
        objects.append((name, obj))
        if inspect.isclass(obj) and obj.__module__.startswith("augmentgen"):
            for attr, value in vars(obj).items():
                if isinstance(value, (staticmethod, classmethod)):
                    value = value.__func__
                elif isinstance(value, property):
                    value = value.fget
                if inspect.isfunction(value) and (value.__module__ or "").startswith("augmentgen"):
                    objects.append((f"{name}.{attr}", value))
    return objects


def _docstring_code(doc: str) -> list[tuple[str, str]]:
    """``(first line of the block as written, code)`` for each ``::`` block and ``>>>`` run of a docstring."""
    out, lines, i = [], doc.splitlines(), 0
    while i < len(lines):
        if lines[i].rstrip().endswith("::"):
            indent = len(lines[i]) - len(lines[i].lstrip())
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            body = []
            while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
                body.append(lines[j])
                j += 1
            code = textwrap.dedent("\n".join(body)).strip("\n")
            if code:
                out.append((code.splitlines()[0], code))
            i = j
        else:
            i += 1
    examples = doctest.DocTestParser().get_examples(doc)
    if examples:
        out.append((examples[0].source.splitlines()[0], "".join(e.source for e in examples)))
    return out


def docstring_blocks() -> list[Block]:
    """The Python examples in the docstrings of augmentgen's public names (and their methods)."""
    blocks, seen = [], set()
    for name, obj in _public_objects():
        doc = inspect.getdoc(obj) if obj is not augmentgen else augmentgen.__doc__
        if not doc or ("::" not in doc and ">>>" not in doc) or id(obj) in seen:
            continue
        seen.add(id(obj))
        try:
            path = Path(inspect.getsourcefile(inspect.unwrap(obj)))
            source_lines = path.read_text(encoding="utf-8").splitlines()
            where = path.relative_to(ROOT).as_posix()
        except (TypeError, OSError, ValueError):
            path, source_lines, where = None, [], f"docstring of {name}"
        for first, code in _docstring_code(doc):
            line = next((n for n, text in enumerate(source_lines, 1) if first.strip() in text), None)
            label = f"{where}:L{line}" if line else where
            blocks.append(Block(f"{label} ({name})", "python", code, bare_public_names=True))
    return blocks


# ----------------------------------------------------------------------------- the Python checker

@dataclass(frozen=True)
class Instance:
    """An object a block built: ``cls(...)``, or the return annotation of an augmentgen function
    (``exact=False``: a family's generator may be any subclass, so a method may come from one)."""

    cls: type
    exact: bool = True


def _is_augmentgen(obj: Any) -> bool:
    if inspect.ismodule(obj):
        return obj.__name__.split(".")[0] == "augmentgen"
    return (getattr(obj, "__module__", None) or "").split(".")[0] == "augmentgen"


def _import_path(path: str) -> Any:
    """``augmentgen.mixing.VariationSource`` -> the object; AttributeError naming what is missing."""
    parts = path.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], 1):
        obj = _attribute(obj, part, ".".join(parts[:i]))
    return obj


def _attribute(obj: Any, name: str, owner: str) -> Any:
    try:
        return getattr(obj, name)
    except AttributeError:
        if inspect.ismodule(obj):
            try:
                return importlib.import_module(f"{obj.__name__}.{name}")
            except ModuleNotFoundError as error:
                if error.name != f"{obj.__name__}.{name}":
                    raise
        raise AttributeError(f"{owner} has no attribute {name!r}") from None


def _subclasses(cls: type) -> list[type]:
    out, todo = [], [cls]
    while todo:
        c = todo.pop()
        out.append(c)
        todo.extend(c.__subclasses__())
    return out


def _returned_class(func: Any) -> type | None:
    """The augmentgen class a function's return annotation names, if exactly one."""
    try:
        hint = typing.get_type_hints(func).get("return")
    except Exception:
        annotation = getattr(func, "__annotations__", {}).get("return")
        hint = None
        if isinstance(annotation, str) and annotation.isidentifier():
            hint = getattr(func, "__globals__", {}).get(annotation) or getattr(augmentgen, annotation, None)
    return hint if inspect.isclass(hint) and _is_augmentgen(hint) else None


def _signature(target: Any, drop_self: bool) -> inspect.Signature | None:
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    if drop_self:
        params = list(sig.parameters.values())
        if params and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
            sig = sig.replace(parameters=params[1:])
    return sig


def _method_targets(cls: type, name: str, exact: bool) -> list[tuple[Any, bool]]:
    """``[(function, takes self)]`` defining ``cls.name`` (on ``cls``, or with ``exact=False`` on
    any of its subclasses)."""
    targets = []
    for c in ([cls] if exact else _subclasses(cls)):
        try:
            static = inspect.getattr_static(c, name)
        except AttributeError:
            continue
        if isinstance(static, staticmethod):
            targets.append((static.__func__, False))
        elif isinstance(static, classmethod):
            targets.append((getattr(c, name), False))
        elif isinstance(static, property):
            targets.append((None, False))  # an attribute, not checked further
        else:
            targets.append((getattr(c, name), inspect.isfunction(getattr(c, name))))
    return targets


def _instance_attribute(cls: type, name: str, exact: bool) -> bool:
    """Whether ``name`` is an attribute the instances get: annotated on the class or assigned
    ``self.name = ...`` in augmentgen's source of the class (its bases; with ``exact=False``
    its subclasses too)."""
    classes = {c for k in ([cls] if exact else _subclasses(cls)) for c in k.__mro__ if _is_augmentgen(c)}
    assigned = re.compile(rf"\bself\.{re.escape(name)}\s*(:[^=\n]+)?=(?!=)")
    for c in classes:
        if name in vars(c).get("__annotations__", {}):
            return True
        try:
            if assigned.search(inspect.getsource(c)):
                return True
        except (OSError, TypeError):
            continue
    return False


def _call_targets(cls: type) -> list[tuple[Any, bool]]:
    """What calling an instance runs: ``__call__``, or an ``nn.Module``'s ``forward``."""
    import torch

    owner = next((c for c in cls.__mro__ if "__call__" in vars(c)), None)
    if owner is None:
        return []
    return [(cls.forward if owner is torch.nn.Module else cls.__call__, True)]


def _call_problem(sig: inspect.Signature, call: ast.Call) -> str | None:
    """What is wrong with binding ``call``'s arguments to ``sig``, or None."""
    starred = any(isinstance(a, ast.Starred) for a in call.args)
    double_star = any(k.arg is None for k in call.keywords)
    elided = any(isinstance(a, ast.Constant) and a.value is Ellipsis for a in call.args)  # f(..., x=1)
    keywords = {k.arg: PLACEHOLDER for k in call.keywords if k.arg is not None}
    params = sig.parameters
    takes_any_keyword = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if not takes_any_keyword:
        for name in keywords:
            if name not in params or params[name].kind is params[name].POSITIONAL_ONLY:
                close = difflib.get_close_matches(name, list(params), n=1)
                hint = f" (did you mean {close[0]}=?)" if close else ""
                return f"has no parameter {name!r}{hint}; its signature is {sig}"
    positional = 0 if (starred or elided) else len(call.args)
    try:
        sig.bind_partial(*[PLACEHOLDER] * positional, **keywords)
    except TypeError as error:
        return f"does not accept these arguments ({error}); its signature is {sig}"
    if not (starred or double_star or elided):
        try:
            sig.bind(*[PLACEHOLDER] * positional, **keywords)
        except TypeError as error:
            return f"is called without a required argument ({error}); its signature is {sig}"
    return None


def _literal_problem(target: Any, sig: inspect.Signature, call: ast.Call) -> str | None:
    """A string constant passed to a parameter annotated ``Literal[...]`` that is not one of them
    (``mode="apend"``)."""
    if any(isinstance(a, ast.Starred) or isinstance(a, ast.Constant) and a.value is Ellipsis for a in call.args):
        return None
    try:
        bound = sig.bind_partial(*call.args, **{k.arg: k.value for k in call.keywords if k.arg is not None})
    except TypeError:
        return None  # reported by _call_problem
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:
        hints = {}  # annotations that do not resolve at run time
    for name, node in bound.arguments.items():
        if name == "family" and isinstance(node, ast.Constant) and node.value not in augmentgen.available_models():
            return f"family={node.value!r} is not a family or preset; those are {sorted(augmentgen.available_models())}"
        hint = hints.get(name)
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or typing.get_origin(hint) is not typing.Literal:
            continue
        if node.value not in typing.get_args(hint):
            return f"{name}={node.value!r} is not one of {list(typing.get_args(hint))}"
    return None


class _Checker(ast.NodeVisitor):
    """Walks a block in order, keeping what each name is bound to, and checks every call that
    resolves to augmentgen."""

    def __init__(self, env: dict[str, Any]):
        self.env = env
        self.problems: list[str] = []
        self.checked: list[str] = []

    # bindings
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] != "augmentgen":
                self._unbind(alias.asname or alias.name.split(".")[0])
                continue
            try:
                module = _import_path(alias.name)
            except (AttributeError, ImportError) as error:
                self.problems.append(f"line {node.lineno}: `import {alias.name}` fails: {error}")
                continue
            if alias.asname:
                self.env[alias.asname] = module
            else:
                self.env[alias.name.split(".")[0]] = augmentgen

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or (node.module or "").split(".")[0] != "augmentgen":
            for alias in node.names:
                self._unbind(alias.asname or alias.name)
            return
        for alias in node.names:
            try:
                self.env[alias.asname or alias.name] = _import_path(f"{node.module}.{alias.name}")
            except (AttributeError, ImportError) as error:
                self.problems.append(f"line {node.lineno}: `from {node.module} import {alias.name}` fails: {error}")
                self._unbind(alias.asname or alias.name)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        value = self._value(node.value)
        for target in node.targets:
            if isinstance(target, ast.Name) and value is not None:
                self.env[target.id] = value
            else:
                self.visit(target)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self._unbind(node.id)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._unbind(node.name)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._unbind(node.name)
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        self._unbind(node.arg)

    def _unbind(self, name: str) -> None:
        self.env.pop(name, None)

    def _value(self, node: ast.expr) -> Any:
        """What an assigned expression is: an augmentgen object, an Instance, or None (unknown)."""
        if isinstance(node, ast.Call):
            callee = self._resolve(node.func)
            if inspect.isclass(callee) and _is_augmentgen(callee):
                return Instance(callee)
            if callable(callee) and not inspect.isclass(callee) and _is_augmentgen(callee):
                cls = _returned_class(callee)
                return Instance(cls, exact=False) if cls else None
            return None
        resolved = self._resolve(node)
        return resolved if resolved is not None and not isinstance(resolved, _Missing) else None

    # resolution
    def _resolve(self, node: ast.expr) -> Any:
        """An augmentgen object, an Instance, a _Missing (names augmentgen, does not exist), or None."""
        if isinstance(node, ast.Name):
            return self.env.get(node.id)
        if isinstance(node, ast.Call):
            value = self._value(node)
            return value if isinstance(value, Instance) else None
        if isinstance(node, ast.Attribute):
            base = self._resolve(node.value)
            if base is None or isinstance(base, _Missing):
                return base
            if isinstance(base, Instance):
                targets = _method_targets(base.cls, node.attr, base.exact)
                if not targets and _instance_attribute(base.cls, node.attr, base.exact):
                    return None  # set on the instance (a submodule, a tensor): not checked further
                if not targets:
                    where = base.cls.__name__ + ("" if base.exact else " (or a subclass)")
                    return _Missing(f"{where} has no attribute {node.attr!r}")
                return _Method(base, node.attr, targets)
            if not _is_augmentgen(base):
                return None
            owner = ast.unparse(node.value)
            try:
                return _attribute(base, node.attr, owner)
            except AttributeError as error:
                return _Missing(str(error))
        return None

    # checks
    def visit_Call(self, node: ast.Call) -> None:
        callee = self._resolve(node.func)
        text = ast.unparse(node.func)
        if isinstance(callee, _Missing):
            self.problems.append(f"line {node.lineno}: `{text}(...)`: {callee.why}")
        elif callee is not None:
            self._check(node, text, callee)
        self.generic_visit(node)

    def _check(self, node: ast.Call, text: str, callee: Any) -> None:
        if isinstance(callee, _Method):
            targets = callee.targets
        elif isinstance(callee, Instance):
            targets = _call_targets(callee.cls)
            if not targets and not issubclass(callee.cls, BaseException):
                self.problems.append(f"line {node.lineno}: `{text}(...)`: a {callee.cls.__name__} is not callable")
                return
        elif inspect.ismodule(callee):
            self.problems.append(f"line {node.lineno}: `{text}(...)`: {callee.__name__} is a module, not callable")
            return
        elif callable(callee) and _is_augmentgen(callee):
            targets = [(callee, False)]
        else:
            return
        self.checked.append(text)
        problems = []
        for target, takes_self in targets:
            sig = _signature(target, takes_self) if target is not None else None
            if sig is None:
                return  # no signature to check (an attribute, a builtin's)
            problem = _call_problem(sig, node) or _literal_problem(target, sig, node)
            if problem is None:
                return  # one definition (a subclass's, for a returned generator) accepts it
            problems.append(problem)
        if problems:
            self.problems.append(f"line {node.lineno}: `{ast.unparse(node)}`: {text} {problems[0]}")


@dataclass(frozen=True)
class _Missing:
    why: str


@dataclass
class _Method:
    instance: Instance
    name: str
    targets: list


def check_python(code: str, *, imported: dict[str, str] | None = None,
                 bare_public_names: bool = False) -> tuple[list[str], list[str]]:
    """``(problems, checked callees)`` of one Python snippet. A snippet that does not parse is a problem."""
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        return [f"does not parse: {error.msg} at line {error.lineno}: {(error.text or '').strip()!r}"], []
    env: dict[str, Any] = {"augmentgen": augmentgen}
    if bare_public_names:
        env.update({name: getattr(augmentgen, name) for name in augmentgen.__all__})
    for name, path in (imported or {}).items():
        try:
            env[name] = _import_path(path)
        except (AttributeError, ImportError):
            pass  # reported by the block that imports it
    checker = _Checker(env)
    checker.visit(tree)
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return checker.problems + zoo_problems(strings), checker.checked


# ----------------------------------------------------------------------------- the CLI checker

def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _logical_lines(code: str) -> list[str]:
    return [line for line in re.sub(r"\\\n", " ", code).splitlines() if line.strip()]


def _augmentgen_commands(tokens: list[str]) -> list[list[str]]:
    """The ``augmentgen ...`` invocations in one shell line's tokens: ``augmentgen train ...``,
    ``VAR=1 augmentgen ...``, ``python|accelerate launch|torchrun ... -m augmentgen ...``."""
    commands, start = [], 0
    separators = {"|", "||", "&&", ";", ">", ">>", "&"}
    for i, token in enumerate(tokens + [";"]):
        if token in separators:
            part = tokens[start:i]
            start = i + 1
            for j, word in enumerate(part):
                if word == "augmentgen" and (j == 0 or part[j - 1] == "-m"
                                             or all(re.match(r"^\w+=", w) for w in part[:j])):
                    commands.append(part[j:])
                    break
    return commands


def _value_problem(action: argparse.Action, flag: str, value: str) -> str | None:
    if value == "..." or value.startswith("$") or re.fullmatch(r"[A-Z][A-Z_]*", value):
        return None  # elided, a shell variable or a metavar placeholder
    converted = value
    if action.type in (int, float) or (action.choices is not None and callable(action.type)):
        try:
            converted = action.type(value)
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            return f"{flag} {value}: not a valid {getattr(action.type, '__name__', 'value')}"
    if action.choices is not None and converted not in action.choices:
        return f"{flag} {value}: not one of its choices {list(action.choices)}"
    return None


def check_cli(code: str, *, prose: bool = False) -> tuple[list[str], list[str]]:
    """``(problems, checked commands)`` of the ``augmentgen`` command lines in a shell snippet
    (``prose``: an inline span, which may name an option without its value)."""
    parser = build_parser()
    commands = _subcommands(parser)
    problems, checked = [], []
    for line in _logical_lines(code):
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as error:
            problems.append(f"`{line.strip()}`: not a shell line ({error})")
            continue
        for argv in _augmentgen_commands(tokens):
            shown = " ".join(argv)
            if len(argv) < 2 or argv[1] == "...":
                continue
            if argv[1] in ("--version", "--help", "-h"):
                continue
            sub = commands.get(argv[1])
            if sub is None:
                close = difflib.get_close_matches(argv[1], list(commands), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                problems.append(f"`{shown}`: no command {argv[1]!r}{hint}; commands: {sorted(commands)}")
                continue
            checked.append(f"augmentgen {argv[1]}")
            problems.extend(f"`{shown}`: {p}" for p in _flag_problems(sub, argv[1], argv[2:], prose))
    return problems, checked


def _names_problems(command: str, values: dict[str, list[str]]) -> list[str]:
    """The values that name augmentgen things: ``--family``, ``--set KEY=...`` (a field of the
    family's config) and zoo ids (``--init-from augmentgen/cgan-mnist``)."""
    problems = []
    families = augmentgen.available_models()
    family = (values.get("--family") or ["cgan"])[-1]
    if family not in families and family != "...":
        problems.append(f"--family {family}: not a family or preset; those are {sorted(families)}")
    elif command == "train" and family in families:
        fields = {f.name for f in dataclasses.fields(type(augmentgen.build_config(family)))}
        for item in values.get("--set", []):
            key = item.partition("=")[0]
            if key not in fields:
                problems.append(f"--set {item}: the {family} config has no field {key!r}")
    for flag, items in values.items():
        problems.extend(zoo_problems(items, f"{flag} "))
    return problems


def zoo_problems(values: list[str], prefix: str = "") -> list[str]:
    """Values shaped like a zoo id (``augmentgen/<name>``) that the zoo does not hold."""
    zoo = augmentgen.list_pretrained()
    return [f"{prefix}{v}: not in the zoo (augmentgen.list_pretrained(): {sorted(zoo)})"
            for v in values if re.fullmatch(r"augmentgen/[\w.-]+", v) and v not in zoo]


def _flag_problems(sub: argparse.ArgumentParser, command: str, words: list[str], prose: bool) -> list[str]:
    problems, options, i = [], sub._option_string_actions, 0
    values: dict[str, list[str]] = {}
    while i < len(words):
        word = words[i]
        i += 1
        if word == "...":
            continue
        if not word.startswith("-"):
            problems.append(f"bare word {word!r}: `augmentgen {command}` takes named options only")
            continue
        flag, has_value, inline = word.partition("=")
        action = options.get(flag)
        if action is None:
            close = difflib.get_close_matches(flag, [o for o in options if o.startswith("--")], n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"`augmentgen {command}` has no option {flag}{hint}")
            continue
        if action.help == argparse.SUPPRESS:
            new = getattr(action, "new", None)
            problems.append(f"{flag} is a hidden (renamed) spelling" + (f"; use {new}" if new else ""))
        if action.nargs == 0:
            continue
        if has_value:
            value = inline
        elif i < len(words):
            value = words[i]
            i += 1
        else:
            if not prose:
                problems.append(f"{flag} needs a value")
            continue
        values.setdefault(flag, []).append(value)
        problem = _value_problem(action, flag, value)
        if problem:
            problems.append(problem)
    return problems + _names_problems(command, values)


def _all_config_fields() -> set[str]:
    return {f.name for family in augmentgen.available_models()
            for f in dataclasses.fields(type(augmentgen.build_config(family)))}


def check_flags_anywhere(code: str) -> tuple[list[str], list[str]]:
    """A prose span of flags (``--select-snapshot best --snapshot-every 200``), no command named:
    each flag must exist in some command, and a value must be a choice where every command that
    has the flag limits its choices."""
    actions: dict[str, list[argparse.Action]] = {}
    for sub in _subcommands(build_parser()).values():
        for flag, action in sub._option_string_actions.items():
            if action.help != argparse.SUPPRESS:
                actions.setdefault(flag, []).append(action)
    problems, checked, words, i = [], [], shlex.split(code), 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("--"):
            continue
        flag, has_value, inline = word.partition("=")
        found = actions.get(flag)
        if not found:
            close = difflib.get_close_matches(flag, list(actions), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"`{code}`: no command has the option {flag}{hint}")
            continue
        checked.append(flag)
        if all(a.nargs == 0 for a in found):
            continue
        value = inline if has_value else (words[i] if i < len(words) and not words[i].startswith("--") else None)
        if value is None:
            continue
        i += not has_value
        if flag == "--set" and value.partition("=")[0] not in _all_config_fields():
            problems.append(f"`{code}`: no family's config has a field {value.partition('=')[0]!r}")
        problems.extend(f"`{code}`: {p}" for p in zoo_problems([value], f"{flag} "))
        results = [_value_problem(a, flag, value) for a in found if a.nargs != 0]
        if results and all(results):
            problems.append(f"`{code}`: {results[0]}")
    return problems, checked


# ----------------------------------------------------------------------------- the tests

README_PYTHON, README_BASH = readme_blocks()
DOCSTRINGS = docstring_blocks()
INLINE = inline_spans()


def _report(block: Block, problems: list[str]) -> str:
    return f"{block.where}: {len(problems)} problem(s) against the API:\n  " + "\n  ".join(problems) + \
           f"\n--- the block ---\n{block.code}"


def test_the_readme_has_the_blocks_this_test_reads():
    """A README without code, or a broken extraction, would make every other test vacuous."""
    assert len(README_PYTHON) >= 10 and len(README_BASH) >= 5, (len(README_PYTHON), len(README_BASH))
    assert len(DOCSTRINGS) >= 3, [b.where for b in DOCSTRINGS]
    checked = [c for block in README_PYTHON for c in check_python(block.code, imported=block.imported_before)[1]]
    assert {"augmentgen.train", "augmentgen.SyntheticMix", "mix", "VariationSource"} <= set(checked), checked


@pytest.mark.parametrize("block", README_PYTHON + DOCSTRINGS, ids=repr)
def test_python_examples_match_the_api(block: Block):
    problems, _ = check_python(block.code, imported=block.imported_before, bare_public_names=block.bare_public_names)
    assert not problems, _report(block, problems)


@pytest.mark.parametrize("block", README_BASH, ids=repr)
def test_readme_command_lines_match_the_cli(block: Block):
    problems, _ = check_cli(block.code)
    assert not problems, _report(block, problems)


@pytest.mark.parametrize("block", INLINE, ids=repr)
def test_readme_inline_code_matches_the_api(block: Block):
    if block.lang == "python":
        problems, _ = check_python(block.code, bare_public_names=True)
    elif block.code.startswith("--"):
        problems, _ = check_flags_anywhere(block.code)
    else:
        problems, _ = check_cli(block.code, prose=True)
    assert not problems, _report(block, problems)


# ----------------------------------------------------------------------------- the checker can fail

def test_the_python_checker_reports_drift():
    """Each kind of drift in a snippet is reported, naming the call and what is wrong; the same
    snippet with the right names passes (so a green run means the README's calls were checked)."""
    good = textwrap.dedent("""
        import augmentgen
        from augmentgen.mixing import VariationSource

        generator = augmentgen.train("aae", "fashion-mnist-small", "runs/aae", steps=10)
        mix = augmentgen.SyntheticMix(generator, ratio=0.5, mode="append")
        images, labels = mix(images, labels)
        mix.state_dict()
        source = VariationSource(generator, "vary", strength=0.5)
        generator.vary(real_images, real_labels, strength=0.5)
        train = augmentgen.load_data("fashion-mnist-small", split="test")
        train.loader(batch_size=64)
        train.images.float()                   # an attribute set on the instance: not checked further
        other.anything(at_all=1)               # not augmentgen: not checked
    """)
    problems, checked = check_python(good)
    assert problems == []
    assert {"augmentgen.train", "augmentgen.SyntheticMix", "mix", "mix.state_dict", "VariationSource",
            "generator.vary", "train.loader"} <= set(checked), checked

    def problems_of(old: str, new: str) -> list[str]:
        assert old in good
        return check_python(good.replace(old, new, 1))[0]

    renamed_keyword = problems_of("ratio=0.5, mode", "ratio=0.5, mixing_mode")
    assert len(renamed_keyword) == 1 and "SyntheticMix" in renamed_keyword[0] and "'mixing_mode'" in renamed_keyword[0]
    assert "did you mean strength=?" in problems_of("strength=0.5)\ngenerator", "strenght=0.5)\ngenerator")[0]
    assert "'split_name'" in problems_of('split="test"', 'split_name="test"')[0]
    assert "has no parameter" in problems_of("batch_size=64", "batchsize=64")[0]
    too_many = problems_of('"runs/aae", steps', '"runs/aae", "extra", steps')
    assert len(too_many) == 1 and "augmentgen.train" in too_many[0] and "too many positional" in too_many[0]
    missing = problems_of("augmentgen.SyntheticMix(generator, ratio", "augmentgen.SyntheticMix(ratio")
    assert len(missing) == 1 and "required argument" in missing[0]
    assert "has no attribute 'SyntheticMixer'" in problems_of("augmentgen.SyntheticMix(", "augmentgen.SyntheticMixer(")[0]
    assert "has no attribute 'state_dikt'" in problems_of("mix.state_dict()", "mix.state_dikt()")[0]
    assert "has no attribute 'vari'" in problems_of("generator.vary(", "generator.vari(")[0]
    assert "LabelledImages (or a subclass) has no attribute 'imagez'" in problems_of("train.images.float", "train.imagez.float")[0]
    assert "fails" in problems_of("import VariationSource", "import VariationSorce")[0]
    assert "return_maks" in problems_of("mix(images, labels)", "mix(images, labels, return_maks=True)")[0]
    assert "does not parse" in problems_of("mix.state_dict()", "mix.state_dict(")[0]
    assert "mode='apend' is not one of ['append', 'replace']" in problems_of('mode="append"', 'mode="apend"')[0]
    assert "family='aea' is not a family" in problems_of('train("aae"', 'train("aea"')[0]
    assert "augmentgen/aae-cifar10: not in the zoo" in check_python(
        'g = augmentgen.from_pretrained("augmentgen/aae-cifar10")')[0][0]
    # `...` stands for arguments left out, and parses
    assert check_python("augmentgen.SyntheticPool(..., device='cuda')\nfor x in y:\n    ...\n")[0] == []
    # a renamed keyword's old spelling still works (with a FutureWarning) but is not the documented one
    assert "has no parameter 'generator'" in check_python("augmentgen.SyntheticMix(generator=g)")[0][0]


def test_the_cli_checker_reports_drift():
    good = ("augmentgen train --family aae --data fashion-mnist --per-class 50 --steps 2000 --out runs/aae\n"
            "accelerate launch --multi_gpu --num_processes 8 -m augmentgen sample --model runs/cgan \\\n"
            "    --per-class 100 --format parquet --out synth/   # 8 GPUs\n"
            "augmentgen train ... --resume\n"
            "make demo   # not augmentgen\n")
    problems, checked = check_cli(good)
    assert problems == [] and checked == ["augmentgen train", "augmentgen sample", "augmentgen train"]
    assert "no option --familly (did you mean --family?)" in check_cli(good.replace("--family", "--familly"))[0][0]
    assert "not one of its choices" in check_cli(good.replace("--format parquet", "--format parket"))[0][0]
    assert "no command 'trian'" in check_cli(good.replace("augmentgen train --family", "augmentgen trian --family"))[0][0]
    assert "hidden (renamed) spelling; use --family" in check_cli("augmentgen train --model aae")[0][0]
    assert "not a valid int" in check_cli("augmentgen train --per-class fifty")[0][0]
    assert "bare word 'aae'" in check_cli("augmentgen train aae")[0][0]
    assert "--family aea: not a family" in check_cli("augmentgen train --family aea")[0][0]
    assert "the cgan config has no field 'los'" in check_cli("augmentgen train --set los=bce")[0][0]
    assert check_cli("augmentgen train --family vae --set beta=2")[0] == []
    assert "--init-from augmentgen/cgan-cifar10: not in the zoo" in check_cli(
        "augmentgen train --init-from augmentgen/cgan-cifar10")[0][0]
    assert "no family's config has a field 'lecam'" in check_flags_anywhere("--set lecam=0.3")[0][0]
    assert "no command has the option --snapshot-evry" in check_flags_anywhere("--snapshot-evry 200")[0][0]
    assert check_flags_anywhere("--select-snapshot best --snapshot-every 200")[0] == []
    assert "not one of its choices" in check_flags_anywhere("--select-snapshot worst")[0][0]


def test_extraction_finds_fences_docstring_blocks_and_spans():
    blocks = fenced_blocks("text\n```python\nx = 1\n```\n\n```bash\nls\n```\n", "X.md")
    assert [(b.where, b.lang, b.code) for b in blocks] == [("X.md:L2", "python", "x = 1"), ("X.md:L6", "bash", "ls")]
    doc = "Example::\n\n    a = f(1)\n    b = g(a)\n\nMore text.\n\n>>> h(2)\n3\n"
    assert _docstring_code(doc) == [("a = f(1)", "a = f(1)\nb = g(a)"), ("h(2)", "h(2)\n")]
    assert any(b.lang == "python" for b in INLINE) and any(b.lang == "bash" for b in INLINE)

