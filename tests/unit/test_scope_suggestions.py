"""`suggest_scope`: the scope a mistyped one most likely meant, or nothing when there is no clear guess."""

from __future__ import annotations

import pytest

from sprongus.domain.scope import Scope, suggest_scope


@pytest.mark.parametrize(("typed", "guess"), [
    ("proj:p1", "project:p1"), ("project/p1", "project:p1"), ("projects:p1", "project:p1"),
    ("Project:p1", "project:p1"), ("PROJECT:p1", "project:p1"), ("p1", "project:p1"), ("p:p1", "project:p1"),
    ("porject:p1", "project:p1"), ("project=p1", "project:p1"), ("project: p1", "project:p1"),
    ("u:alice", "user:alice"), ("users/alice", "user:alice"), ("uesr:alice", "user:alice"),
    ("alice@example.com", "user:alice@example.com"), ("System", "system"), ("system:", "system"),
])
def test_common_mistakes_get_a_guess_that_parses(typed: str, guess: str) -> None:
    assert suggest_scope(typed) == guess
    assert str(Scope.parse(guess)) == guess


@pytest.mark.parametrize("typed", [
    "team:acme",  # another kind altogether
    "system:x",  # system takes no id: dropping it would change the meaning
    "project:", "user:", "project", "user", "p:",  # a kind with no id
    "project:-x", "project:p 1", "a/b/c",  # the id itself is wrong: the guess would be wrong too
    "notion.api_token", "OPENAI_API_KEY",  # a key name typed without its scope, not a project
    "", " ", "x" * 300, "project:p1", "system",
])
def test_no_guess_without_a_clear_one(typed: str) -> None:
    assert suggest_scope(typed) is None
