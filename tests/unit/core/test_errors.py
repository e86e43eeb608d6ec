"""The exception tree and FieldError's derived text."""

from __future__ import annotations

import pytest

from kubefence.errors import (
    DataplaneError,
    EnvironmentProblem,
    FieldError,
    InputError,
    KubefenceError,
    ValidationError,
)


def test_field_error_str_names_file_line_object_and_path() -> None:
    """str(FieldError) is derived from its structured fields, in file:line: object: path order."""
    problem = FieldError(
        "must be a valid CIDR",
        path="spec.ingress[0].from[1].ipBlock.cidr",
        file="p.yaml",
        line=12,
        object="NetworkPolicy test/deny",
    )
    assert str(problem) == (
        "p.yaml:12: NetworkPolicy test/deny: spec.ingress[0].from[1].ipBlock.cidr: "
        "must be a valid CIDR"
    )
    assert str(FieldError("bad")) == "bad"


def test_validation_error_lists_every_problem_in_source_order() -> None:
    """ValidationError keeps all problems, sorted by file and line, and counts them."""
    late = FieldError("b", file="a.yaml", line=9)
    early = FieldError("a", file="a.yaml", line=2)
    error = ValidationError([late, early])
    assert error.problems == (early, late)
    assert str(error).splitlines()[0] == "2 problems in the input"


@pytest.mark.parametrize(
    ("cls", "base"),
    [
        (ValidationError, InputError),
        (InputError, KubefenceError),
        (EnvironmentProblem, KubefenceError),
        (DataplaneError, KubefenceError),
    ],
)
def test_exception_tree_shape(cls: type[Exception], base: type[Exception]) -> None:
    """Each error family derives from the base the CLI maps to an exit code."""
    assert issubclass(cls, base)
