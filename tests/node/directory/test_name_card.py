"""Our name card from the character file: the picture rides along only when it is small."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from keys import Identity
from node.config import load_config
from node.config.cards import plain_png
from node.directory.name_card import card_for
from registry_crdt import InlineIcon, sign_card
from registry_crdt.limits import MAX_INLINE_ICON_BYTES


def character_with_icon(tmp_path: Path, picture: bytes) -> Path:
    (tmp_path / "kai.png").write_bytes(picture)
    icon = {"file": "kai.png", "sha256": hashlib.sha256(picture).hexdigest()}
    path = tmp_path / "kai.json"
    path.write_text(json.dumps({"name": "Kai", "icon": icon}))
    return path


def test_a_small_icon_is_on_the_card_and_a_large_one_stays_home(tmp_path: Path) -> None:
    me = Identity.generate()
    small = plain_png(side=16)
    config = load_config(character_with_icon(tmp_path, small))
    card = card_for(config, me, [], 1000)
    assert card.icon == InlineIcon(mime="image/png", data=small)
    sign_card(me, card)  # peers would take it

    large = small + b"\x00" * MAX_INLINE_ICON_BYTES  # trailing bytes: still a PNG file
    config = load_config(character_with_icon(tmp_path, large))
    assert card_for(config, me, [], 1000).icon is None
