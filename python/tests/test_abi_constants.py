"""The Python package's copies of libmaru's C constants match ``maru.h``.

``maru.h`` is itself checked against the Rust exports and maru-proto
(``libmaru/tests/header.rs``), so this closes the chain: a limit changed in
maru-proto fails here until the Python side follows."""

from __future__ import annotations

import re
from pathlib import Path

from maru import _lib

HEADER = Path(__file__).resolve().parents[2] / "libmaru" / "include" / "maru.h"


def defines() -> dict[str, int]:
    text = HEADER.read_text()
    return {m[1]: int(m[2]) for m in re.finditer(r"^#define (MARU_\w+) (\d+)u?$", text, re.M)}


def test_limits_and_abi_version_match_the_header():
    d = defines()
    assert d["MARU_KEY_MAX"] == _lib.KEY_MAX
    assert d["MARU_NAME_MAX"] == _lib.NAME_MAX
    assert d["MARU_ABI_VERSION"] == _lib.ABI_VERSION


def test_info_field_bits_match_the_header():
    d = defines()
    assert (_lib.INFO_CAPACITY, _lib.INFO_USED, _lib.INFO_ONLINE, _lib.INFO_NODE) == (
        d["MARU_INFO_CAPACITY"],
        d["MARU_INFO_USED"],
        d["MARU_INFO_ONLINE"],
        d["MARU_INFO_NODE"],
    )
