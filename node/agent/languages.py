"""Which language a character speaks in a visit, and the names of languages.

A character speaks the first language of its own list unless the two share another: the
visit's language is the first of the host's languages the guest understands (a guest
speaks the host's language). Both sides work it out from the two name cards, so they
agree without a word about it; with no language in common each speaks its own.
"""

from __future__ import annotations

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


__all__ = [
    "LANGUAGE_NAMES",
    "base_language",
    "common_language",
    "language_name",
    "languages_for_visit",
]
