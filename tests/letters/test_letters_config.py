"""Letter templates come from configuration, checked in full when loaded."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest

from csa_closure.errors import InputError
from csa_closure.letters import (
    ALLOWED_LETTERS,
    CONFIG_ENV,
    LetterField,
    LetterKind,
    LetterPurpose,
    LettersConfigError,
    Recipient,
    load_letters_config,
    parse_letters_config,
)
from csa_closure.letters.config import bundled_config_text

TEMPLATE_IDS = {
    kind: f"00000000-0000-4000-8000-{n:012d}" for n, kind in enumerate(sorted(ALLOWED_LETTERS))
}


def config_text(**replace: str) -> str:
    """A complete, valid configuration; ``replace`` swaps the body of one letter's table."""
    parts = ["version = 1", "", "[window]", "response_days = 60", "reminder_after_days = 21", ""]
    for kind, template_id in TEMPLATE_IDS.items():
        parts.append(f"[templates.{kind.purpose.value}.{kind.recipient.value}]")
        body = replace.get(
            kind.key.replace(".", "_"),
            f'template_id = "{template_id}"\nplaceholders = ["recipient_name", "case_reference"]',
        )
        parts += [body, ""]
    return "\n".join(parts)


def test_the_bundled_default_loads_from_the_package_and_covers_every_letter() -> None:
    config = load_letters_config(env={})
    assert config.source == "bundled letters.toml"
    assert set(config.templates) == set(ALLOWED_LETTERS)
    assert config.example is True  # the shipped ids are not a live service's
    assert (config.response_days, config.reminder_after_days) == (60, 21)
    assert len(config.sha256) == 64
    # Shipped inside the package, so a wheel has it.
    assert resources.files("csa_closure.letters").joinpath("letters.toml").is_file()
    representation = config.template(LetterKind(LetterPurpose.REPRESENTATION, Recipient.PWC))
    assert LetterField.RESPONSE_DEADLINE in representation.fields


def test_the_environment_variable_and_a_path_override_the_default(tmp_path: Path) -> None:
    file = tmp_path / "live.toml"
    file.write_text(config_text(), encoding="utf-8")
    from_env = load_letters_config(env={CONFIG_ENV: str(file)})
    assert from_env.source == str(file) and from_env.example is False
    other = tmp_path / "other.toml"
    other.write_text(config_text().replace("response_days = 60", "response_days = 90"))
    assert load_letters_config(other, env={CONFIG_ENV: str(file)}).response_days == 90


def test_an_unreadable_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(LettersConfigError, match=f"cannot read.*{CONFIG_ENV}"):
        load_letters_config(env={CONFIG_ENV: str(tmp_path / "missing.toml")})


def test_placeholders_may_be_renamed_and_keep_their_order() -> None:
    text = config_text(
        representation_PWC=(
            'template_id = "00000000-0000-4000-8000-000000000099"\n'
            'placeholders = { "reply by" = "response_deadline", name = "recipient_name" }'
        )
    )
    template = parse_letters_config(text).template(
        LetterKind(LetterPurpose.REPRESENTATION, Recipient.PWC)
    )
    assert template.placeholders == (
        ("reply by", LetterField.RESPONSE_DEADLINE),
        ("name", LetterField.RECIPIENT_NAME),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version = [", "not valid TOML"),
        (config_text().replace("version = 1", "version = 2"), "version: expected 1"),
        (config_text() + "\nsurprise = 1\n", "surprise: unknown key"),
        (
            config_text().replace("response_days = 60", "response_days = 0"),
            "window.response_days: must be a whole number",
        ),
        (
            config_text().replace("reminder_after_days = 21", "reminder_after_days = 60"),
            "window.reminder_after_days: must be before the deadline",
        ),
        (
            config_text(reminder_PWC='template_id = "not-a-uuid"'),
            r"templates.reminder.PWC.template_id: must be the template's ID",
        ),
        (
            config_text(reminder_PWC='template_id = "00000000-0000-4000-8000-000000000099"\nx = 1'),
            r"templates.reminder.PWC.x: unknown key",
        ),
        (
            config_text(
                write_off_notice_NRP=(
                    'template_id = "00000000-0000-4000-8000-000000000099"\n'
                    'placeholders = ["response_deadline"]'
                )
            ),
            "a write_off_notice letter cannot carry response_deadline",
        ),
        (
            config_text(
                transfer_notice_NRP=(
                    'template_id = "00000000-0000-4000-8000-000000000099"\n'
                    'placeholders = { other_parent = "other_parent_address" }'
                )
            ),
            "'other_parent_address' is not a letter field",
        ),
        (
            config_text(
                transfer_notice_PWC=(
                    'template_id = "00000000-0000-4000-8000-000000000099"\n'
                    'placeholders = { "Address Line 1" = "recipient_name" }'
                )
            ),
            "the address placeholders are filled in already",
        ),
        (
            config_text(
                transfer_notice_PWC=(
                    'template_id = "00000000-0000-4000-8000-000000000099"\n'
                    'placeholders = { name = "recipient_name", NAME = "case_reference" }'
                )
            ),
            "NAME: listed twice",
        ),
        (
            config_text()
            + "\n[templates.representation.NRP]\n"
            + 'template_id = "00000000-0000-4000-8000-000000000099"\n',
            "there is no representation letter to the NRP",
        ),
        (
            config_text() + '\n[templates.goodbye.PWC]\ntemplate_id = "x"\n',
            "templates.goodbye: not a letter purpose",
        ),
    ],
)
def test_a_bad_configuration_is_refused_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(LettersConfigError, match=message) as caught:
        parse_letters_config(text, source="test.toml")
    assert str(caught.value).startswith("test.toml: ")
    assert isinstance(caught.value, InputError)


def test_every_letter_needs_a_template() -> None:
    text = config_text()
    cut = text.index("[templates.transfer_notice.PWC]")
    end = text.index("[templates.", cut + 1)
    with pytest.raises(LettersConfigError, match=r"templates\.transfer_notice\.PWC: missing"):
        parse_letters_config(text[:cut] + text[end:])


def test_two_letters_may_share_a_template_only_with_the_same_placeholders() -> None:
    shared = 'template_id = "00000000-0000-4000-8000-000000000099"\n'
    same = parse_letters_config(
        config_text(
            write_off_notice_PWC=shared + 'placeholders = ["amount"]',
            write_off_notice_NRP=shared + 'placeholders = ["amount"]',
        )
    )
    assert len({t.template_id for t in same.templates.values()}) == 6
    with pytest.raises(LettersConfigError, match="the same template as"):
        parse_letters_config(
            config_text(
                write_off_notice_PWC=shared + 'placeholders = ["amount"]',
                write_off_notice_NRP=shared + 'placeholders = ["decision_date"]',
            )
        )


def test_the_bundled_file_is_plain_toml_with_one_table_per_letter() -> None:
    data = tomllib.loads(bundled_config_text())
    kinds = {
        f"{purpose}.{recipient}" for purpose, by in data["templates"].items() for recipient in by
    }
    assert kinds == {k.key for k in ALLOWED_LETTERS}
