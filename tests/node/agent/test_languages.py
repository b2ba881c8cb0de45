"""The visit's language: the host's first that the guest understands."""

from __future__ import annotations

from node.agent.languages import allowed_in_visit, common_language, languages_for_visit


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


def test_when_the_two_share_a_language_a_line_must_be_in_it() -> None:
    mina, hana = ("en", "ja"), ("ja", "en")
    assert allowed_in_visit(mina, hana, "guest") == ("ja",)  # at Hana's: Japanese only
    assert allowed_in_visit(hana, ("fr",), "host") == hana  # nothing shared: any of ours
    assert allowed_in_visit(hana, (), "host") == hana  # partner unknown: any of ours
