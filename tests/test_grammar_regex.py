"""Patterns GenAI's grammar compiler (XGrammar) refuses are found before they reach a step (no engine here;
`tests/e2e/test_agent.py` sends some to the real engine through the server)."""

from __future__ import annotations

import re

import pytest

from openarc.serving.grammar_regex import regex_problem


@pytest.mark.parametrize(
    "pattern",
    [
        r"^[a-z]+$",
        r"^\d{3}-\d{4}$",
        r"(?:ab)+",
        r"(?<name>ab)",
        r"a{2}",
        r"a{2,}",
        r"a{1,3}?",
        r"a*?",
        r"[\d\w-]+",
        r"\w+@\w+\.com",
        r"\u00e9\x41\cA",
        r"\u{1F600}",
        r"\A\Z\q",  # escapes XGrammar does not know match the letter itself (it warns)
        r"a|",
        r"ab\$",
        r"[\b]",
    ],
)
def test_patterns_the_compiler_takes(pattern: str) -> None:
    assert regex_problem(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        (r"^(?=.*[0-9]).{8,}$", "a lookahead"),
        (r"(?!x).+", "a lookahead"),
        (r"(?<=a)b", "a lookbehind"),
        (r"(?<!a)b", "a lookbehind"),
        (r"(?i)abc", "a group flag or extension '(?i'"),
        (r"(?P<name>ab)", "a group flag or extension '(?P'"),
        (r"(?#note)a", "a group flag or extension '(?#'"),
        (r"(?<na_me>a)", "a group name other than ASCII letters"),
        (r"\bword\b", "a word boundary '\\b' at position 1"),
        (r"a\B", "a word boundary '\\B' at position 2"),
        (r"(a)\1", "a backreference '\\1'"),
        (r"(?<a>x)\k<a>", "a backreference '\\k'"),
        (r"[]a]", "an empty character class"),
        (r"a{,5}", "not a repetition count"),
        (r"a{x}", "not a repetition count"),
        (r"a{2,x}", "not a repetition count"),
        (r"a)", "an unmatched ')'"),
        (r"(a", "an unclosed '('"),
        (r"[a", "an unclosed '['"),
        (r"\c1", "an invalid control escape"),
        (r"\u{}abc", "an invalid Unicode escape"),
        ("\\x4", "an unfinished escape"),
        ("a\\", "an unfinished escape"),
    ],
)
def test_patterns_the_compiler_refuses(pattern: str, fragment: str) -> None:
    problem = regex_problem(pattern)
    assert problem is not None and fragment in problem, problem


def test_python_accepts_most_of_what_the_compiler_refuses() -> None:
    # Why `re.compile` alone was not enough: every one of these compiles in Python.
    for pattern in (r"(?=x)", r"(?i)x", r"\bx", r"(a)\1", r"a{,5}", r"(?P<n>a)", r"[]a]"):
        re.compile(pattern)
        assert regex_problem(pattern) is not None
