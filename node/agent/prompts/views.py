"""What every prompt is built from, and the rules every builder applies to it.

The views are what a builder is given: our persona (trusted, from the owner's config), the
partner as the network told us (untrusted apart from its PeerID), what we keep about it,
and the turns of a visit. The rules they share: a relation is only ever used in a prompt
about its own partner (:func:`checked_relation`, the memory isolation of
:mod:`node.agent.prompts`), the affinity tier and its wording, our own text outside a data
slot (:func:`plain_text`), and whether our character speaks Japanese first (then a visit
turn's whole system message is written in Japanese).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from keys.errors import LocalError
from node.agent.affinity import AffinityTier, tier_for
from node.agent.languages import base_language
from node.agent.spotlight import UNTRUSTED_LIMIT, cap_untrusted, neutralise

MEMORY_LIMIT = 800
OWN_TURN_LIMIT = UNTRUSTED_LIMIT

Speaker = Literal["me", "partner"]


class PromptError(LocalError):
    """A prompt builder was called with arguments it cannot turn into a prompt."""


class CrossPartnerError(PromptError):
    """The relation passed in belongs to a different partner than the one in the prompt."""


@dataclass(frozen=True, slots=True)
class PersonaView:
    """Our character, from the owner's config (trusted)."""

    name: str
    personality: str
    background: str = ""
    greeting: str = ""
    languages: tuple[str, ...] = ("en",)
    """BCP 47 tags; the first is the language our character speaks."""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PartnerView:
    """The other character as the network told us (untrusted apart from ``peer_id``)."""

    peer_id: str
    name: str
    card: str = ""


@dataclass(frozen=True, slots=True)
class RelationView:
    """What we keep about one partner."""

    peer_id: str
    affinity: int
    visits: int = 0
    summary: str = ""
    notes: str = ""


@dataclass(frozen=True, slots=True)
class Turn:
    speaker: Speaker
    text: str


TIER_WORDING: dict[AffinityTier, str] = {
    AffinityTier.STRANGER: "You barely know them: be polite and a little reserved.",
    AffinityTier.ACQUAINTANCE: "You have met them before: be friendly.",
    AffinityTier.FRIEND: "They are your friend: be warm, and bring up things you shared before.",
    AffinityTier.CLOSE_FRIEND: (
        "They are a close friend: be open, playful and personal with them."
    ),
}
TIER_WORDING_JA: dict[AffinityTier, str] = {
    AffinityTier.STRANGER: "相手のことはまだよく知りません。礼儀正しく、少し控えめに。",
    AffinityTier.ACQUAINTANCE: "前に会ったことのある相手です。親しみをこめて。",
    AffinityTier.FRIEND: (
        "相手はあなたの友だちです。温かく、前に一緒に話したことにも触れてください。"
    ),
    AffinityTier.CLOSE_FRIEND: "相手は親友です。打ち解けて、楽しく、気さくに話してください。",
}


def speaks_japanese_first(me: PersonaView) -> bool:
    return bool(me.languages) and base_language(me.languages[0]) == "ja"


def plain_text(text: str, limit: int) -> str:
    """Our own (or owner) text that goes outside a slot: normalised, neutralised, capped."""
    return neutralise(cap_untrusted(text, limit))


def checked_relation(partner: PartnerView, relation: RelationView | None) -> RelationView | None:
    """``relation``, when it is about ``partner`` (or None); :class:`CrossPartnerError` if
    it is about someone else."""
    if relation is not None and relation.peer_id != partner.peer_id:
        raise CrossPartnerError("the relation passed in is about a different partner")
    return relation


def tier_of(relation: RelationView | None) -> AffinityTier:
    """The affinity tier of ``relation``; a stranger's when we keep none."""
    return AffinityTier.STRANGER if relation is None else tier_for(relation.affinity)
