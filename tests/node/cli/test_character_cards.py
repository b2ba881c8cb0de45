"""``roomverse character import|export`` against cards made by independent implementations:
card-forge's Character Card V2/V3 models and its PNG embedding (Pillow), and aichar (a
Rust library) for V1 JSON and for reading what we export. Cards are untrusted input:
each way a card can be wrong is a one-line error, and nothing is written."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import aichar
import pytest
from forge.helper import embed_card_data, extract_card_data
from forge.models import CharacterCardV2, CharacterCardV3, Lorebook, LorebookEntry

from node.cli.main import main
from node.config import load_config
from node.config.cards import MAX_CARD_JSON_BYTES, plain_png, png_text

V2_FIELDS: dict[str, Any] = {
    "name": "Mina",
    "description": "Keeps a small tea house by the sea. " * 12,
    "personality": "Warm, curious, a little mischievous.",
    "scenario": "A seaside town with a lighthouse.",
    "first_mes": "Welcome in, {{user}}! I'm {{char}}; the kettle is on.",
    "mes_example": "<START>\n{{user}}: Hi\n{{char}}: Hello!",
    "creator": "someone",
    "character_version": "1.2",
    "system_prompt": "You are {{char}}.",
    "post_history_instructions": "Stay in character.",
    "alternate_greetings": ["Oh, hello again!"],
    "tags": ["tea", "sea", "Tea", "x" * 40],
    "creator_notes": "Made for testing.",
}


def lorebook() -> Lorebook:
    entry = LorebookEntry(keys=["kettle"], content="The kettle whistles.", insertion_order=0)
    return Lorebook(entries=[entry])


def avatar(tmp_path: Path) -> Path:
    path = tmp_path / "plain.png"
    path.write_bytes(plain_png((200, 80, 40), side=16))
    return path


def roomverse(*args: str) -> int:
    return main(["character", *args])


def test_a_v3_png_from_card_forge_becomes_a_character_file_that_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = CharacterCardV3(data={**V2_FIELDS, "character_book": lorebook(), "nickname": "Mi"})
    card_png = tmp_path / "mina-card.png"
    embed_card_data(card.model_dump_json(), avatar(tmp_path), card_png, legacy=True)
    out = tmp_path / "out" / "mina.json"

    assert roomverse("import", str(card_png), "-o", str(out)) == 0
    config = load_config(out)
    assert config.name == "Mina"
    assert len(config.description) <= 280 and config.description.endswith("…")
    assert config.persona.personality == "Warm, curious, a little mischievous."
    assert config.persona.background == "A seaside town with a lighthouse."
    assert config.persona.greeting == "Welcome in! I'm Mina; the kettle is on."
    assert config.tags == ("tea", "sea", "x" * 32)
    assert config.persona.languages == ("en",)
    assert config.icon is not None
    assert config.icon.sha256 == hashlib.sha256(card_png.read_bytes()).hexdigest()
    assert config.icon.path == out.with_suffix(".png")
    aside = json.loads(out.with_suffix(".card-extra.json").read_text())
    assert aside["spec"] == "chara_card_v3"
    assert aside["mes_example"].startswith("<START>")
    assert aside["character_book"]["entries"][0]["content"] == "The kettle whistles."
    assert aside["alternate_greetings"] == ["Oh, hello again!"]
    assert aside["nickname"] == "Mi"
    assert "roomverse node --character" in capsys.readouterr().out


def test_a_v2_json_and_a_v1_json_from_aichar_import_too(tmp_path: Path) -> None:
    v2 = tmp_path / "v2.json"
    v2.write_text(CharacterCardV2(data=V2_FIELDS).model_dump_json())
    assert roomverse("import", str(v2), "-o", str(tmp_path / "a.json")) == 0
    assert load_config(tmp_path / "a.json").persona.background.startswith("A seaside")

    v1 = tmp_path / "v1.json"
    made = aichar.create_character(
        name="ハナ",
        summary="山あいの町で小さな花屋をしている。",
        personality="のんびりしていて、花の話が好き。",
        scenario="山あいの町",
        greeting_message="いらっしゃい、{{user}}！",
        example_messages="",
        image_path="",
    )
    v1.write_text(made.export_json("tavernai"))
    assert roomverse("import", str(v1), "-o", str(tmp_path / "hana.json")) == 0
    hana = load_config(tmp_path / "hana.json")
    assert hana.name == "ハナ" and hana.persona.languages == ("ja",)
    assert hana.persona.greeting == "いらっしゃい！"
    assert hana.icon is None  # a JSON card has no avatar


def test_an_exported_card_is_read_by_card_forge_and_aichar(tmp_path: Path) -> None:
    card_png = tmp_path / "mina-card.png"
    embed_card_data(
        CharacterCardV2(data=V2_FIELDS).model_dump_json(), avatar(tmp_path), card_png, True
    )
    character = tmp_path / "mina.json"
    assert roomverse("import", str(card_png), "-o", str(character)) == 0
    exported = tmp_path / "exported.png"
    assert roomverse("export", str(character), "-o", str(exported)) == 0

    read = extract_card_data(exported)
    assert read is not None
    assert (read.data.name, read.data.scenario) == ("Mina", "A seaside town with a lighthouse.")
    assert read.data.first_mes == "Welcome in! I'm Mina; the kettle is on."
    assert read.data.tags == ["tea", "sea", "x" * 32]
    loaded = aichar.load_character_card_file(str(exported))
    assert loaded.name == "Mina" and loaded.personality == "Warm, curious, a little mischievous."
    # The avatar is the one imported, with the old card chunks replaced by one new one.
    chunks = png_text(exported.read_bytes())
    assert set(chunks) == {b"chara"}
    # And back again: the same character.
    again = tmp_path / "again.json"
    assert roomverse("import", str(exported), "-o", str(again)) == 0
    assert load_config(again).persona == load_config(character).persona

    as_json = tmp_path / "exported.json"
    assert roomverse("export", str(character), "-o", str(as_json)) == 0
    assert json.loads(as_json.read_text())["spec"] == "chara_card_v2"


def png_with_text(keyword: bytes, text: bytes) -> bytes:
    png = plain_png(side=4)
    end = png.index(b"IEND") - 4
    body = keyword + b"\x00" + text
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + body) & 0xFFFFFFFF)
    return png[:end] + chunk + png[end:]


def b64(value: object) -> bytes:
    return base64.b64encode(json.dumps(value).encode())


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (plain_png(), "holds no character card"),
        (plain_png()[:30], "ends inside a chunk"),
        (png_with_text(b"chara", b"not base64!"), "not base64"),
        (png_with_text(b"chara", base64.b64encode(b"\xff\xfe")), "not JSON"),
        (png_with_text(b"ccv3", b64([1, 2])), "not a JSON object"),
        (b'{"spec": "chara_card_v2", "data": []}', "'data' object"),
        (b'{"description": "no name"}', "no name"),
        (b'{"name": 5}', "must be text"),
        (b'{"name": "A", "tags": "tea"}', "list of text"),
        (b'{"name": "' + b"a" * MAX_CARD_JSON_BYTES + b'"}', "over 2 MiB"),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_a_bad_card_is_one_clear_error_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, says: str
) -> None:
    card = tmp_path / "card.bin"
    card.write_bytes(content)
    out = tmp_path / "out.json"
    assert roomverse("import", str(card), "-o", str(out)) == 2
    error = capsys.readouterr().err
    assert says in error and len(error.strip().splitlines()) == 1
    assert not out.exists() and not out.with_suffix(".png").exists()


def test_nothing_is_overwritten_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"name": "Kai", "description": "keeps a lighthouse"}))
    out = tmp_path / "kai.json"
    out.write_text("{}")
    assert roomverse("import", str(card), "-o", str(out)) == 2
    assert "exists; --force overwrites" in capsys.readouterr().err
    assert out.read_text() == "{}"
    assert roomverse("import", str(card), "-o", str(out), "--force") == 0
    assert load_config(out).description == "keeps a lighthouse"


def test_an_icon_whose_file_changed_is_refused(tmp_path: Path) -> None:
    picture = avatar(tmp_path)
    character = tmp_path / "kai.json"
    digest = hashlib.sha256(picture.read_bytes()).hexdigest()
    icon = {"file": "plain.png", "sha256": digest}
    character.write_text(json.dumps({"name": "Kai", "icon": icon}))
    small = load_config(character)
    assert small.icon is not None and small.icon.mime == "image/png"
    picture.write_bytes(plain_png((1, 2, 3), side=16))
    assert main(["character", "export", str(character), "-o", str(tmp_path / "k.png")]) == 2
