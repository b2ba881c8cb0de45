"""Characters that render as nothing, stripped from partner text before it is redacted,
stored or shown to an engine."""

from __future__ import annotations

import re

INVISIBLE = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f"
    "\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0\u180b-\u180f\ufe00-\ufe0f"
    "\U000e0100-\U000e01ef]"
)
"""Characters that show nothing: every format character (Unicode category Cf: zero-width
space and joiners, bidi controls, the tag characters of the U+E0000 block, BOM, soft
hyphen), plus the invisible ones outside Cf: the combining grapheme joiner, Hangul
fillers and variation selectors (which can smuggle a whole payload as an invisible run
after one visible character). Spelled out as one class so stripping is one regex pass;
a test checks it against the running Python's Unicode database."""
