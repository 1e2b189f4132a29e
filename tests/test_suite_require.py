"""What a missing service or install means to a test: a skip here, a failure in CI."""

from __future__ import annotations

import pytest


def test_a_missing_requirement_skips_on_a_developers_machine_with_its_reason(require):
    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL here"):
        type(require)(in_ci=False)("no PostgreSQL here: initdb not found")


def test_in_ci_a_missing_requirement_fails_the_test_naming_what_is_missing(require):
    with pytest.raises(pytest.fail.Exception, match="CI=true and the run lacks .*venv-dagster is missing"):
        type(require)(in_ci=True)(".venv-dagster is missing")


def test_nothing_missing_neither_skips_nor_fails(require):
    type(require)(in_ci=True)(None)
    type(require)(in_ci=True).module("json", "the standard library")


def test_a_module_that_is_not_installed_is_named_with_what_installs_it(require):
    with pytest.raises(pytest.fail.Exception, match="no_such_module_x is missing: the x extra"):
        type(require)(in_ci=True).module("no_such_module_x", "the x extra")
