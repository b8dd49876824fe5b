"""One declaration per field: where a model field is in an Engine API object, and how it is read.

A `Shape` is a model class (Node, Service, Task) and one `Field` per model field: the path of
the value in the API object (or the paths, for a field read from the first of several), the
msgspec type that value must have on the fast path, and how each path makes the model's value
of it. Both decode paths are made from it:

- the fast path (`wire`): msgspec decodes an element's bytes into Structs the shape builds from
  the paths and types (`decoder`), with only the declared fields (the engine's others are
  skipped, never built), and `from_struct` reads them;
- the dict path (`mapping`): `from_dict` digs each path out of the plain JSON and reads it as
  it is, whatever it is (the answer for an element the strict Structs do not fit).

The Structs are strict: a value of another type, or null, does not fit, and that element takes
the dict path. So for every element the fast path takes, both read the same typed values with
the same declaration: the fast path gives the dict path's answer by construction.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

import msgspec

M = TypeVar("M")
Json = Mapping[str, Any]
Path = tuple[str, ...]
_NOTHING: Json = {}


class Unusual(Exception):
    """This element is not the common shape: let the dict path answer for it."""


@dataclass(frozen=True)
class Field:
    """One model field. `fast` reads the typed value(s) at `paths` (None: taken as it is);
    `slow` reads the plain JSON value(s) found there, of any type, raising ValueError or
    TypeError when it cannot. `or_id`: an empty value is the object's id."""

    paths: tuple[Path, ...]
    type: Any  # the msgspec type at every path (strict: anything else is unusual)
    default: Any  # the value when the path is absent
    slow: Callable[..., Any]
    fast: Callable[..., Any] | None = None
    or_id: bool = False


def dig(obj: Json, path: Path) -> Any:
    """The value at `path`, each object on the way read as the dict path always has: an absent
    or empty one as {}, anything else that is not an object an AttributeError (malformed)."""
    for key in path[:-1]:
        obj = obj.get(key) or _NOTHING
    return obj.get(path[-1])


class Shape(Generic[M]):
    """A model class read from one kind of Engine API object, field by field (see above)."""

    def __init__(self, model: type[M], kind: str, id_path: Path, **declared: Field) -> None:
        names = [f.name for f in fields(model)]  # type: ignore[arg-type]
        if names != ["id", *declared]:
            # a model field added, removed or moved without its declaration here
            raise ImportError(f"{model.__name__}'s fields are {names}: declare each, in order")
        self.model, self.kind, self.id_path = model, kind, id_path
        self.fields = declared
        paths = [id_path] + [p for f in declared.values() for p in f.paths]
        leaves: dict[Path, tuple[Any, Any]] = {id_path: (str, "")}
        for f in declared.values():
            for p in f.paths:
                if leaves.setdefault(p, (f.type, f.default)) != (f.type, f.default):
                    raise ImportError(f"{model.__name__}: {'.'.join(p)} declared twice, unlike")
        struct = _struct(f"_{model.__name__}", leaves)
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(struct)
        self.from_struct: Callable[[Any], M] = _reader(model, names, declared, paths)

    def from_dict(self, obj: Json) -> M:
        oid = dig(obj, self.id_path)
        if not isinstance(oid, str) or not oid:
            raise ValueError(f"{self.kind} object without an ID: keys {sorted(obj)[:8]}")
        values: list[Any] = [oid]
        for f in self.fields.values():
            v = f.slow(*(dig(obj, p) for p in f.paths))
            values.append(oid if f.or_id and not v else v)
        return self.model(*values)


def _reader(
    model: type[M], names: list[str], declared: Mapping[str, Field], paths: list[Path]
) -> Callable[[Any], M]:
    """`from_struct`, written from the declaration as straight-line code (as dataclasses
    writes a class's __init__): a cold scan reads ten thousand tasks, and a loop over the
    fields of each cost half as much again. One attrgetter fetches every path's value; the
    slots' own descriptors set the fields directly, which makes the value a frozen
    dataclass's __init__ makes (no __post_init__: checked) in about half its time."""
    if hasattr(model, "__post_init__") or not all(hasattr(model, n) for n in names):
        raise ImportError(f"{model.__name__} is not a plain slotted dataclass")
    scope: dict[str, Any] = {
        "get": operator.attrgetter(*(".".join(p) for p in paths)),
        "new": object.__new__,
        "model": model,
        "Unusual": Unusual,
    }
    lines = ["def from_struct(o):", "    v = get(o)", "    if not v[0]:", "        raise Unusual"]
    lines += ["    m = new(model)", f"    set_{names[0]}(m, v[0])"]
    scope[f"set_{names[0]}"] = getattr(model, names[0]).__set__
    at = 1
    for name, f in declared.items():
        scope[f"set_{name}"] = getattr(model, name).__set__
        value = ", ".join(f"v[{i}]" for i in range(at, at + len(f.paths)))
        if f.fast is not None:
            scope[f"read_{name}"] = f.fast
            value = f"read_{name}({value})"
        elif len(f.paths) > 1:
            value = f"({value})"
        if f.or_id:
            value = f"{value} or v[0]"
        lines.append(f"    set_{name}(m, {value})")
        at += len(f.paths)
    lines.append("    return m")
    exec("\n".join(lines), scope)  # noqa: S102 - our own declaration's code, no outside input
    reader: Callable[[Any], M] = scope["from_struct"]
    reader.__doc__ = "\n".join(lines)  # what it is, for a reader of this one
    return reader


def _struct(name: str, leaves: Mapping[Path, tuple[Any, Any]]) -> type[msgspec.Struct]:
    """The Struct holding `leaves` (path -> (type, default)), objects on the way as Structs of
    their own: absent, they are empty (their defaults); null, they are unusual."""
    own: dict[str, tuple[Any, Any]] = {}
    below: dict[str, dict[Path, tuple[Any, Any]]] = {}
    for path, leaf in leaves.items():
        if len(path) == 1:
            own[path[0]] = leaf
        else:
            below.setdefault(path[0], {})[path[1:]] = leaf
    for key, sub in below.items():
        if key in own:
            raise ImportError(f"{name}: {key} is declared both as a value and as an object")
        inner = _struct(f"{name}_{key}", sub)
        own[key] = (inner, msgspec.field(default_factory=inner))
    return msgspec.defstruct(name, [(k, t, d) for k, (t, d) in own.items()])
