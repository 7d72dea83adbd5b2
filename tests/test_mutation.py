"""The gradient tests are strong enough to catch realistic bugs in every backward: each mutant of tests/mutation.py
(a dropped term, a wrong sum axis, a lost skip path, a scatter written as an assignment, a missing scale, ...) put
into a copy of minigpt/ makes the op's tests or the model's tests fail. Minutes: `pytest -m slow tests/test_mutation.py`
(or `python tests/mutation.py` for the table of docs/gradcheck.md)."""

import pytest

import mutation

pytestmark = pytest.mark.slow


def test_the_unmutated_copy_passes_every_test_the_mutants_face():
    mutation.control()


@pytest.mark.parametrize("mutant", mutation.MUTANTS, ids=[m.name for m in mutation.MUTANTS])
def test_every_mutant_is_caught(mutant):
    result = mutation.caught(mutant)
    assert result["op"] or result["model"], f"no test caught: {mutant.name}"
    if mutant.tests is not None:  # a bug in an op is caught by the op's own tests, not only through the model
        assert result["op"], f"the op's tests ({mutant.tests}) miss: {mutant.name}"
