"""The visit's language: the host's first that the guest understands."""

from __future__ import annotations

from node.agent.languages import common_language, languages_for_visit


def test_the_guest_speaks_the_hosts_language_when_it_can() -> None:
    assert common_language(["ja", "en"], ["en", "ja"]) == "ja"
    assert common_language(["en", "ja"], ["ja", "en"]) == "en"
    assert common_language(["ja"], ["en", "ja-JP"]) == "ja"
    assert common_language(["ja"], ["en"]) is None


def test_each_side_puts_the_visits_language_first_and_keeps_the_rest() -> None:
    mina, hana, kai = ("en", "ja"), ("ja", "en"), ("en",)
    # Mina visits Hana: both speak Japanese; Hana visits Mina: both speak English.
    assert languages_for_visit(mina, hana, "guest") == ("ja", "en")
    assert languages_for_visit(hana, mina, "host") == ("ja", "en")
    assert languages_for_visit(hana, mina, "guest") == ("en", "ja")
    # Hana and Kai share English whoever hosts.
    assert languages_for_visit(hana, kai, "host") == ("en", "ja")
    assert languages_for_visit(hana, kai, "guest") == ("en", "ja")
    # Nothing in common, or nothing known: our own.
    assert languages_for_visit(("ja",), kai, "host") == ("ja",)
    assert languages_for_visit(hana, (), "host") == hana
