"""The MySQL-4.1 scramble: canal's test vector, the server check and canal's acceptance rule."""

from __future__ import annotations

from adapter.protocol import scramble

SEED = bytes(range(1, 9))


def test_known_vector() -> None:
    assert scramble.client_token("canal", SEED) == "7de44690d8e53782cb61804a2455c284a3bbfb06"
    assert scramble.stored_hash("canal") == "e3619321c1a937c46a0d8bd1dac39f93b27d4458"


def test_server_check_accepts_right_and_refuses_wrong_password() -> None:
    stored = scramble.stored_hash("canal")
    assert scramble.check_token("7de44690d8e53782cb61804a2455c284a3bbfb06", SEED, stored)
    assert not scramble.check_token(scramble.client_token("wrong", SEED), SEED, stored)
    assert not scramble.check_token(scramble.client_token("canal", b"otherseed"), SEED, stored)
    assert not scramble.check_token("not-hex", SEED, stored)
    assert not scramble.check_token("abcd", SEED, stored)


def test_authenticate_rules() -> None:
    stored = scramble.stored_hash("canal")
    token = scramble.client_token("canal", SEED)
    # no passwd configured: anything passes, any user when canal.user is empty
    assert scramble.authenticate("", "", "", "", SEED)
    assert scramble.authenticate("", "", "bob", "whatever", SEED)
    assert not scramble.authenticate("canal", "", "bob", "", SEED)
    # passwd configured
    assert scramble.authenticate("canal", stored, "canal", token, SEED)
    assert scramble.authenticate("", stored, "anyone", token, SEED)
    assert not scramble.authenticate("canal", stored, "canal", "", SEED)
    assert not scramble.authenticate("canal", stored, "other", token, SEED)
    assert not scramble.authenticate("canal", stored, "canal", scramble.client_token("bad", SEED), SEED)
