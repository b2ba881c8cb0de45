"""Which language a character speaks in a visit, the names of languages, and whether a
line is written in one of them.

A character speaks the first language of its own list unless the two share another: the
visit's language is the first of the host's languages the guest understands (a guest
speaks the host's language). Both sides work it out from the two name cards, so they
agree without a word about it; with no language in common each speaks its own.

A line's language is told from its script alone (:func:`in_language`: kana, han, hangul,
Cyrillic, Latin letters): cheap and pure, and enough for the output guard
(:mod:`node.agent.guard`) to catch a line in the wrong language.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Final, Literal

LANGUAGE_NAMES: Final[dict[str, tuple[str, str]]] = {
    "en": ("English", "英語"),
    "ja": ("Japanese", "日本語"),
    "fr": ("French", "フランス語"),
    "de": ("German", "ドイツ語"),
    "es": ("Spanish", "スペイン語"),
    "it": ("Italian", "イタリア語"),
    "pt": ("Portuguese", "ポルトガル語"),
    "nl": ("Dutch", "オランダ語"),
    "zh": ("Chinese", "中国語"),
    "ko": ("Korean", "韓国語"),
    "ru": ("Russian", "ロシア語"),
}
"""English and Japanese names of the languages we can name; others are named by code."""


def base_language(tag: str) -> str:
    """The primary subtag of a BCP 47 tag, lower-cased (``pt-BR`` → ``pt``)."""
    return tag.split("-", 1)[0].lower()


def language_name(tag: str, *, japanese: bool = False) -> str:
    names = LANGUAGE_NAMES.get(base_language(tag))
    if names is None:
        return f"言語コード{tag}の言語" if japanese else f"the language with the code {tag}"
    return names[1] if japanese else names[0]


def common_language(host: Sequence[str], guest: Sequence[str]) -> str | None:
    """The visit's language (a base tag): the host's first that the guest understands;
    None when they share none."""
    host_bases = [base_language(tag) for tag in host]
    guest_bases = [base_language(tag) for tag in guest]
    for tag in host_bases:
        if tag in guest_bases:
            return tag
    return None


def languages_for_visit(
    mine: tuple[str, ...], partners: Sequence[str], role: Literal["host", "guest"]
) -> tuple[str, ...]:
    """``mine`` with the language to speak in this visit first. A partner whose card
    names no language is taken to understand ours."""
    if not partners or not mine:
        return mine
    host, guest = (mine, partners) if role == "host" else (partners, mine)
    common = common_language(host, guest)
    if common is None:
        return mine
    chosen = [tag for tag in mine if base_language(tag) == common][:1]
    return (*chosen, *(tag for tag in mine if tag not in chosen))


MIN_LETTERS_FOR_LANGUAGE: Final = 6
"""Shorter lines ("OK!", names) are not judged for their language."""

_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3005]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_LATIN_LANGUAGES: Final = frozenset(
    {
        *("en", "fr", "de", "es", "it", "pt", "nl", "sv", "da", "no", "nb", "nn", "fi"),
        *("pl", "cs", "sk", "tr", "id", "ms", "vi", "ro", "hu", "ca", "eo", "et", "lv"),
        *("lt", "sl", "hr", "sq", "is", "ga", "cy", "eu", "gl", "af", "sw", "tl"),
    }
)


def _fits(language: str, counts: dict[str, int], letters: int) -> bool | None:
    """Whether text with these script ``counts`` is plausibly in ``language`` (None: we
    cannot tell for that language)."""
    base = language.split("-", 1)[0].lower()
    kana, han = counts["kana"], counts["han"]
    if base == "ja":
        return kana >= 1 and kana >= 0.1 * (kana + han) and (kana + han) >= 0.5 * letters
    if base == "zh":
        return han >= 0.5 * letters and kana <= 0.1 * han
    if base == "ko":
        return counts["hangul"] >= 0.5 * letters
    if base in ("ru", "uk", "bg", "sr", "mk", "be", "kk"):
        return counts["cyrillic"] >= 0.5 * letters
    if base in _LATIN_LANGUAGES:
        return counts["latin"] >= 0.5 * letters
    return None


def in_language(line: str, languages: Sequence[str]) -> bool:
    """Whether ``line`` may be in one of ``languages`` (short lines and languages whose
    script we do not check always pass)."""
    text = unicodedata.normalize("NFKC", line)
    letters = sum(1 for ch in text if ch.isalpha())
    if letters < MIN_LETTERS_FOR_LANGUAGE or not languages:
        return True
    counts = {
        "kana": len(_KANA.findall(text)),
        "han": len(_HAN.findall(text)),
        "hangul": len(_HANGUL.findall(text)),
        "cyrillic": len(_CYRILLIC.findall(text)),
        "latin": len(_LATIN.findall(text)),
    }
    verdicts = [_fits(language, counts, letters) for language in languages]
    return any(v is None or v for v in verdicts)


def allowed_in_visit(
    mine: tuple[str, ...], partners: Sequence[str], role: Literal["host", "guest"]
) -> tuple[str, ...]:
    """The languages a line of ours may be in during this visit (what the guard accepts):
    the visit's language alone when the two share one, else all of ours."""
    spoken = languages_for_visit(mine, partners, role)
    if not partners or not spoken:
        return spoken
    host, guest = (mine, partners) if role == "host" else (partners, mine)
    return spoken[:1] if common_language(host, guest) is not None else spoken


__all__ = [
    "LANGUAGE_NAMES",
    "MIN_LETTERS_FOR_LANGUAGE",
    "allowed_in_visit",
    "base_language",
    "common_language",
    "in_language",
    "language_name",
    "languages_for_visit",
]
