"""Masking free text: what must be masked always is, and structured values never are."""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from fairlens_monitor.cli.main import cli
from fairlens_monitor.security.masking import (
    looks_personal,
    luhn_valid,
    mask,
    quoted_redacted,
    value_form,
    value_forms,
)

LUHN_CARDS = ["4111111111111111", "5500005555555559", "378282246310005", "6011111111111117"]


def luhn_complete(body: str) -> str:
    """``body`` plus the check digit that makes it pass the Luhn check."""
    return body + next(d for d in "0123456789" if luhn_valid(body + d))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("SSN 123456789 on file", "SSN [ssn] on file"),
        ("SSN 123 45 6789 on file", "SSN [ssn] on file"),
        ("ssn:123456789", "ssn:[ssn]"),
        ("tel:555-123-4567, tel:030 1234 5678", "tel:[phone], tel:[phone]"),
        ("card 4111 1111 1111 1111 declined", "card [card] declined"),
        ("card 4111-1111-1111-1111", "card [card]"),
        ("amex 3782 822463 10005", "amex [card]"),
        ("card 4111111111111111.", "card [card]."),
        (
            "john.doe@example.com,123-45-6789,555-123-4567,4111111111111111",
            "[email],[ssn],[phone],[card]",
        ),
        # left alone: durations, times, decimals, hex digests, numbers failing Luhn
        ("interval[0:00:00.200000]", "interval[0:00:00.200000]"),
        (
            "took 1 day, 0:00:01.123456 at 2026-12-05T06:21:28.123456+00:00",
            "took 1 day, 0:00:01.123456 at 2026-12-05T06:21:28.123456+00:00",
        ),
        (
            "seed 4111111111111112, p 0.123456789, -123456789",
            "seed 4111111111111112, p 0.123456789, -123456789",
        ),
        ("head 0123456789abcdef" * 4, "head 0123456789abcdef" * 4),
    ],
)
def test_mask_examples(line: str, expected: str) -> None:
    assert mask(line) == expected


def test_the_old_filter_mangled_a_duration_and_missed_bare_numbers() -> None:
    """The regressions of issue 15, item 3, one by one."""
    assert mask("interval[0:00:00.200000]") == "interval[0:00:00.200000]"  # was [phone]
    assert "123456789" not in mask("ssn 123456789")
    assert "123 45 6789" not in mask("ssn 123 45 6789")
    for card in LUHN_CARDS:
        assert mask(f"card {card}") == "card [card]"


HEX = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
TIMES = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
DURATIONS = st.timedeltas(min_value=timedelta(days=-10_000), max_value=timedelta(days=10_000))


@settings(max_examples=300, deadline=None)
@given(digest=HEX, at=TIMES, took=DURATIONS)
@example(digest="0" * 64, at=datetime(2026, 1, 1, tzinfo=UTC), took=timedelta(seconds=0.2))
def test_masking_never_alters_digests_timestamps_or_durations(
    digest: str, at: datetime, took: timedelta
) -> None:
    for text in (
        digest,
        digest.upper(),
        at.isoformat(),
        at.isoformat().replace("+00:00", "Z"),
        at.strftime("%Y-%m-%d %H:%M:%S"),
        str(took),
        f"interval[{took}]",
        f"{took.total_seconds():.6f}s",
    ):
        line = f"run 7 sha256 {text} ok"
        assert mask(line) == line


def ssn_shaped(n: int) -> bool:
    """Nine digits that the SSN rule masks (area not 000/666, group not 00, serial 0000)."""
    text = str(n)
    return (
        len(text) == 9
        and text[:3] not in ("000", "666")
        and text[3:5] != "00"
        and text[5:] != "0000"
    )


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=-(2**63), max_value=2**63))
def test_masking_never_alters_integers_that_are_neither_cards_nor_ssns(n: int) -> None:
    digits = str(abs(n))
    assume(not (13 <= len(digits) <= 19 and luhn_valid(digits)))
    assume(not (n >= 0 and ssn_shaped(n)))
    for line in (f"seed {n}", f"{n}", f"count={n:,}", f"id {n}."):
        assert mask(line) == line


LOCAL = st.text(
    alphabet=string.ascii_letters + string.digits + "._+-", min_size=1, max_size=20
).filter(lambda s: s[0] not in ".")
DOMAIN = st.lists(
    st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=10),
    min_size=2,
    max_size=4,
).map(".".join)


@settings(max_examples=300, deadline=None)
@given(
    local=LOCAL,
    domain=DOMAIN,
    sep=st.sampled_from(["-", " ", ""]),
    area=st.integers(1, 899).filter(lambda a: a != 666),
    group=st.integers(1, 99),
    serial=st.integers(1, 9999),
    body=st.text(alphabet=string.digits, min_size=12, max_size=18),
    grouped=st.booleans(),
)
def test_masking_always_hides_emails_ssns_and_cards(
    local: str, domain: str, sep: str, area: int, group: int, serial: int, body: str, grouped: bool
) -> None:
    email = f"{local}@{domain}"
    ssn = f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"
    card = luhn_complete(body)
    if grouped and len(card) == 16:
        card = " ".join(card[i : i + 4] for i in range(0, 16, 4))
    line = f"applicant {email} with ssn {ssn}, card {card}; done"
    masked = mask(line)
    for secret in (email, ssn, card):
        assert secret not in masked, masked
        assert looks_personal(secret)


def test_value_forms_hide_content_and_keep_shape() -> None:
    assert value_form("2") == "'9'"
    assert value_form("Female") == "'Aaaaaa'"
    assert value_form("john.doe@example.com") == "'aaaa.aaa@aaa…'"
    assert value_form(7) == "'9'"
    shown = value_forms(["john.doe@example.com", "123-45-6789", "Zebulon", "Zebulon"])
    assert shown == "'aaaa.aaa@aaa…', '999-99-9999', 'Aaaaaaa' [a letter, 9 digit]"
    for canary in ("john", "123", "Zebulon"):
        assert canary not in shown


def test_a_note_that_looks_personal_is_refused_unless_confirmed(
    write_config: Callable[..., Path],
) -> None:
    """A note stays in the chain for ever: one that looks personal is refused (exit 2, one
    line, not echoed, nothing recorded) unless the operator says it is a false alarm."""
    config = write_config({"simulation": {"drift": 1.0}})

    def fl(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(config), *args])

    assert fl("once").exit_code == 0
    plain = fl("alerts", "ack", "1", "--by", "alice", "--note", "looking at it, CR-12")
    assert plain.exit_code == 0, plain.output
    assert "warning" not in plain.stderr
    refused = fl(
        "alerts", "resolve", "1", "--by", "alice", "--note", "applicant jane@example.com complained"
    )
    assert refused.exit_code == 2, refused.output
    assert "looks like it holds personal data" in refused.stderr
    assert "jane@example.com" not in refused.stderr
    assert "acknowledged" in fl("alerts", "list", "--state", "all").stdout  # not resolved
    blank = fl("alerts", "resolve", "1", "--by", " ", "--note", "fixed")
    assert blank.exit_code == 2
    assert "--by" in blank.stderr
    done = fl(
        "alerts",
        "resolve",
        "1",
        "--by",
        "alice",
        "--note",
        "ticket 4111 1111 1111 1111",
        "--note-is-not-personal",
    )
    assert done.exit_code == 0, done.output


def test_error_lines_are_masked(write_config: Callable[..., Path]) -> None:
    """A config value holding an e-mail or SSN used to be echoed in clear."""
    config = write_config({"schedule": {"interval_seconds": "jane@example.com 123-45-6789"}})
    result = CliRunner().invoke(cli, ["--config", str(config), "once"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: "), result.stderr
    assert "[email] [ssn]" in result.stderr, result.stderr
    assert "jane@example.com" not in result.stderr
    assert "123-45-6789" not in result.stderr


def test_the_stored_error_text_is_masked() -> None:
    from fairlens_monitor.ops.cycle import error_text

    assert error_text(ValueError("row of jane@example.com, 123 45 6789")) == (
        "ValueError: row of [email], [ssn]"
    )


def test_structured_output_is_never_masked(write_config: Callable[..., Path]) -> None:
    """A seed shaped like an SSN, and the 64-hex hashes, come out of --json exactly."""
    config = write_config({"simulation": {"seed": 123456789}})
    result = CliRunner().invoke(cli, ["--config", str(config), "once", "--json"])
    assert result.exit_code == 0, result.output
    assert '"seed": 123456789' in result.stdout
    assert "[ssn]" not in result.stdout
    assert re.search(r'"hash": "[0-9a-f]{64}"', result.stdout), result.stdout


def test_quoted_data_in_a_library_message_is_redacted_configured_names_kept() -> None:
    message = 'invalid input syntax for type integer: "Zebulon Quixotic"\nLINE 1: SELECT'
    assert quoted_redacted(message, ["risk"]) == 'invalid input syntax for type integer: "…"'
    assert quoted_redacted('column "risk" does not exist', ["risk"]) == (
        'column "risk" does not exist'
    )
