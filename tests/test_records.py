"""tpplan.records: the value classes behave as the dataclasses they replace (tpplan/records.py says why)."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from dataclasses import field

import pytest

from tpplan.records import record


@record
class Point:
    """A frozen keyword-only record."""

    x: int
    y: int = 2
    tags: tuple[str, ...] = ()
    cache: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def total(self) -> int:
        return self.x + self.y


@record(frozen=False)
class Box:
    items: list[int] = field(default_factory=list)
    label: str = "box"


@record(kw_only=False)
class Pair:
    first: str
    second: int = 0


@record
class Checked:
    n: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n must be >= 0")


def test_init_defaults_factories_and_properties():
    p = Point(x=1)
    assert (p.x, p.y, p.tags, p.cache, p.total) == (1, 2, (), {}, 3)
    assert Point(x=1).cache is not Point(x=1).cache  # a fresh dict per instance
    assert Box().items == [] and Box().items is not Box().items


def test_init_refuses_what_a_dataclass_refuses():
    with pytest.raises(TypeError, match=r"Point.__init__\(\) missing 1 required argument: 'x'"):
        Point()
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        Point(x=1, z=3)
    with pytest.raises(TypeError, match="positional"):
        Point(1)
    with pytest.raises(TypeError, match="multiple values for argument 'first'"):
        Pair("a", first="b")
    with pytest.raises(ValueError, match="n must be >= 0"):
        Checked(n=-1)


def test_positional_record():
    assert Pair("a", 3) == Pair(first="a", second=3)
    assert Pair("a").second == 0
    assert Pair.__match_args__ == ("first", "second")


def test_frozen_slotted_and_hashable():
    p = Point(x=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        del p.y
    assert not hasattr(p, "__dict__")
    assert hash(Point(x=1, cache={"a": 1})) == hash(Point(x=1))  # compare=False fields do not count
    assert {Point(x=1), Point(x=1)} == {Point(x=1)}


def test_mutable_record_is_unhashable_and_settable():
    b = Box()
    b.label = "crate"
    assert b.label == "crate"
    with pytest.raises(TypeError):
        hash(b)


def test_equality_and_repr():
    assert Point(x=1) == Point(x=1, cache={"k": 1})
    assert Point(x=1) != Point(x=2)
    assert Point(x=1) != Pair("a")
    assert repr(Point(x=1, tags=("a",))) == "Point(x=1, y=2, tags=('a',))"


def test_dataclasses_functions_work_on_records():
    p = Point(x=1, tags=("t",))
    assert dataclasses.is_dataclass(p) and dataclasses.is_dataclass(Point)
    assert [f.name for f in dataclasses.fields(p)] == ["x", "y", "tags", "cache"]
    assert dataclasses.replace(p, y=7) == Point(x=1, y=7, tags=("t",))
    assert dataclasses.asdict(p) == {"x": 1, "y": 2, "tags": ("t",), "cache": {}}
    assert dataclasses.astuple(Pair("a", 1)) == ("a", 1)


def test_pickle_and_copy_round_trip():
    p = Point(x=3, tags=("a", "b"))
    assert pickle.loads(pickle.dumps(p)) == p
    assert copy.deepcopy(p) == p and copy.copy(p) == p
    b = Box(items=[1])
    assert pickle.loads(pickle.dumps(b)).items == [1]


def test_signature_for_help():
    sig = inspect.signature(Point)
    assert list(sig.parameters) == ["x", "y", "tags", "cache"]
    assert sig.parameters["y"].default == 2 and sig.parameters["x"].kind is inspect.Parameter.KEYWORD_ONLY
    assert inspect.signature(Pair).parameters["first"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert repr(sig.parameters["cache"].default) == "<factory>"  # a default_factory field is optional


def test_replace_dunder_for_copy_replace():
    assert Point(x=1).__replace__(y=5) == Point(x=1, y=5)


def test_definitions_a_record_refuses():
    with pytest.raises(ValueError, match="mutable default list"):
        @record
        class Bad:
            items: list[int] = []  # noqa: RUF012
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument 'a'"):
        @record(kw_only=False)
        class Order:
            a: int = 1
            b: int
    with pytest.raises(TypeError, match="cannot inherit"):
        @record
        class Child(Point):
            z: int = 0


def test_tpplan_defines_no_dataclass():
    """Every value class is a record: one `@dataclass` on the planning path costs 1-6 ms of import on 3.11."""
    from layering import PACKAGE
    offenders = [f"{p.relative_to(PACKAGE)}:{i}" for p in PACKAGE.rglob("*.py") if p.name != "records.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if line.lstrip().startswith("@dataclass")]
    assert not offenders, offenders
