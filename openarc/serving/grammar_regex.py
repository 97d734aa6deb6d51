"""What GenAI's grammar compiler (XGrammar) refuses in a JSON schema's `pattern`.

XGrammar turns a pattern into grammar rules with its own scanner (regex_converter.cc), which knows less than
Python's `re`: no lookaround, no backreferences, no word boundaries, no `(?…)` flags or extensions, no empty
character class, and `{` only as a repetition count. Its refusal happens inside the engine's step and fails
the whole batch, so a pattern is scanned here the way XGrammar scans it and refused with a 400 instead.
Only refusals are mirrored: where XGrammar matches an escape it does not know as the letter itself (`\\A`),
it warns and goes on, and so does this scanner.
"""

from __future__ import annotations

_CLASS_ESCAPES = frozenset("dDwWsS")
_HEX = frozenset("0123456789abcdefABCDEF")


def regex_problem(pattern: str) -> str | None:
    """Why XGrammar would refuse `pattern`, or None if it compiles it."""
    scanner = _Scanner(pattern)
    try:
        scanner.scan()
    except _Refused as refused:
        return f"{refused} at position {scanner.at + 1}"
    return None


class _Refused(Exception):
    pass


class _Scanner:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.at = 0
        self.depth = 0

    def peek(self, offset: int = 0) -> str:
        index = self.at + offset
        return self.text[index] if index < len(self.text) else ""

    def scan(self) -> None:
        while self.at < len(self.text):
            char = self.peek()
            if char == "[":
                self.character_class()
            elif char == "(":
                self.at += 1
                self.depth += 1
                if self.peek() == "?":
                    self.at += 1
                    self.group_modifier()
            elif char == ")":
                if self.depth == 0:
                    raise _Refused("an unmatched ')'")
                self.depth -= 1
                self.at += 1
            elif char == "{":
                self.repetition()
            elif char == "\\":
                self.escape()
            else:
                self.at += 1
        if self.depth:
            raise _Refused("an unclosed '('")

    def character_class(self) -> None:
        self.at += 1
        if self.peek() == "]":
            raise _Refused("an empty character class '[]'")
        while self.at < len(self.text) and self.peek() != "]":
            if self.peek() == "\\":
                if self.peek(1) in _CLASS_ESCAPES:
                    self.at += 2
                else:
                    self.char_escape()
            else:
                self.at += 1
        if self.at >= len(self.text):
            raise _Refused("an unclosed '['")
        self.at += 1

    def group_modifier(self) -> None:
        modifier = self.peek()
        if modifier == ":":
            self.at += 1
        elif modifier in ("=", "!"):
            raise _Refused("a lookahead '(?=' or '(?!'")
        elif modifier == "<" and self.peek(1) in ("=", "!"):
            raise _Refused("a lookbehind '(?<=' or '(?<!'")
        elif modifier == "<":
            self.at += 1
            while self.peek().isascii() and self.peek().isalpha():
                self.at += 1
            if self.peek() != ">":
                raise _Refused("a group name other than ASCII letters")
            self.at += 1
        elif not modifier:
            raise _Refused("an unfinished group '(?'")
        else:
            raise _Refused(f"a group flag or extension '(?{modifier}'")

    def repetition(self) -> None:
        """{x}, {x,} or {x,y}: anything else after '{' is refused, a literal brace included."""
        self.at += 1
        self.digits(required=True)
        if self.peek() == "}":
            self.at += 1
            return
        if self.peek() != ",":
            raise _Refused("a '{' that is not a repetition count {n}, {n,} or {n,m}")
        self.at += 1
        self.digits(required=False)
        if self.peek() != "}":
            raise _Refused("a '{' that is not a repetition count {n}, {n,} or {n,m}")
        self.at += 1

    def digits(self, required: bool) -> None:
        start = self.at
        while self.peek().isascii() and self.peek().isdigit():
            self.at += 1
        if required and self.at == start:
            raise _Refused("a '{' that is not a repetition count {n}, {n,} or {n,m}")

    def escape(self) -> None:
        letter = self.peek(1)
        if letter in _CLASS_ESCAPES:
            self.at += 2
        elif letter and letter in "123456789k":
            raise _Refused(f"a backreference '\\{letter}'")
        elif letter and letter in "pP":
            raise _Refused(f"a Unicode property escape '\\{letter}'")
        elif letter and letter in "bB":
            raise _Refused(f"a word boundary '\\{letter}'")
        else:
            self.char_escape()

    def char_escape(self) -> None:
        remaining = len(self.text) - self.at
        letter = self.peek(1)
        if remaining < 2 or (letter == "u" and remaining < 5) or (letter == "x" and remaining < 4):
            raise _Refused("an unfinished escape")
        if letter == "c" and remaining < 3:
            raise _Refused("an unfinished escape")
        if letter == "u" and self.peek(2) == "{":
            self.at += 3
            start = self.at
            while self.peek() in _HEX and self.at - start <= 6:
                self.at += 1
            if self.at == start or self.at - start > 6 or self.peek() != "}":
                raise _Refused("an invalid Unicode escape '\\u{…}'")
            self.at += 1
        elif letter == "c":
            if not (self.peek(2).isascii() and self.peek(2).isalpha()):
                raise _Refused("an invalid control escape '\\c'")
            self.at += 3
        elif letter == "u" and all(self.peek(k) in _HEX for k in range(2, 6)):
            self.at += 6
        elif letter == "x" and all(self.peek(k) in _HEX for k in range(2, 4)):
            self.at += 4
        else:
            self.at += 2
