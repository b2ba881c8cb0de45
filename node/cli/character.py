"""``roomverse character import|export``: Tavern character cards (V1, V2, V3; JSON or PNG)
to RoomVerse character files and back (the conversion itself: :mod:`node.config.cards`).

Import writes the character file, the avatar beside it (``NAME.png``, named in the
file's ``icon`` with its sha256) and what the card had that a RoomVerse character has no
place for (``NAME.card-extra.json``); the result is loaded back before anything is
written, so a card that would make a bad character file fails with the field named.
Nothing is overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from keys.errors import ConfigError
from node.config import load_config, parse_config, slug
from node.config.cards import (
    MAX_CARD_BYTES,
    CardError,
    card_to_character,
    character_to_card,
    plain_png,
    png_with_card,
    read_card,
)


def add_character_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    character = sub.add_parser("character", help="import or export Tavern character cards")
    actions = character.add_subparsers(dest="action", required=True)
    imported = actions.add_parser(
        "import", help="a character card (V1/V2/V3, .png or .json) → a character file"
    )
    imported.add_argument("card", type=Path)
    imported.add_argument("-o", "--output", type=Path, help="character file (default: NAME.json)")
    imported.add_argument("--force", action="store_true", help="overwrite existing files")
    exported = actions.add_parser("export", help="a character file → a V2 card (.png or .json)")
    exported.add_argument("character", type=Path)
    exported.add_argument("-o", "--output", type=Path, help="card file (default: NAME.png)")
    exported.add_argument("--force", action="store_true", help="overwrite an existing file")


def run_character_command(args: argparse.Namespace) -> int:
    if args.action == "import":
        return _import(args.card, args.output, force=args.force)
    return _export(args.character, args.output, force=args.force)


def _import(card_path: Path, output: Path | None, *, force: bool) -> int:
    data = _read(card_path)
    card = read_card(data)
    imported = card_to_character(card, data if data.startswith(b"\x89PNG") else None)
    character = imported.character
    out = output or Path(f"{slug(character['name'])}.json")
    avatar = out.with_suffix(".png") if imported.avatar is not None else None
    extra = out.with_suffix(".card-extra.json") if imported.kept_aside else None
    targets = [path for path in (out, avatar, extra) if path is not None]
    if not force:
        taken = [str(path) for path in targets if path.exists()]
        if taken:
            raise ConfigError("output", f"{', '.join(taken)} exists; --force overwrites")
    if avatar is not None and imported.avatar is not None:
        character["icon"]["file"] = avatar.name
        _write(avatar, imported.avatar)
    text = json.dumps(character, ensure_ascii=False, indent=2) + "\n"
    parse_config(json.loads(text), base_dir=out.parent)  # what we write must load
    _write(out, text.encode())
    if extra is not None:
        aside = json.dumps(imported.kept_aside, ensure_ascii=False, indent=2) + "\n"
        _write(extra, aside.encode())
    print(f"{character['name']}: character file {out}")
    if avatar is not None:
        print(f"  avatar {avatar} (sha256 {character['icon']['sha256'][:16]}…)")
    if extra is not None:
        print(f"  kept aside (no place in a RoomVerse character): {extra}")
        print(f"    {', '.join(sorted(imported.kept_aside))}")
    print(f"run it: roomverse node --character {out}")
    return 0


def _export(character_path: Path, output: Path | None, *, force: bool) -> int:
    config = load_config(character_path)
    out = output or Path(f"{slug(config.name)}.png")
    if out.exists() and not force:
        raise ConfigError("output", f"{out} exists; --force overwrites")
    card = character_to_card(config)
    if out.suffix.lower() == ".json":
        _write(out, (json.dumps(card, ensure_ascii=False, indent=2) + "\n").encode())
    else:
        icon = config.icon
        png = icon.data if icon is not None and icon.mime == "image/png" else plain_png()
        _write(out, png_with_card(png, card))
    print(f"{config.name}: Character Card V2 {out}")
    return 0


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CARD_BYTES + 1)
    except OSError as exc:
        raise CardError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_CARD_BYTES:
        raise CardError(f"{path} is over {MAX_CARD_BYTES // (1024 * 1024)} MiB")
    return data


def _write(path: Path, data: bytes) -> None:
    """Write atomically: a half-written character file must never be left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


__all__ = ["add_character_command", "run_character_command"]
