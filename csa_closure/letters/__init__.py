"""Letters: which are due, what they say, where they go.

- :mod:`~csa_closure.letters.kinds`: ``LetterPurpose``, ``Recipient``, the letters that exist;
- :mod:`~csa_closure.letters.due`: ``letters_due(frame, as_of)``, vectorised over debts;
- :mod:`~csa_closure.letters.config`: Notify templates and placeholders from TOML;
- :mod:`~csa_closure.letters.compose`: the personalisation of one letter, for its recipient only;
- :mod:`~csa_closure.letters.address`: Notify's address rules, checked before batching (one
  party, or a whole frame at once);
- :mod:`~csa_closure.letters.references`: opaque references with no personal data.
"""

from csa_closure.letters.address import (
    AddressProblem,
    AddressProblemCode,
    address_frame,
    address_lines,
    address_problems,
    check_address,
    check_lines,
    format_postcode,
)
from csa_closure.letters.compose import (
    AddressNotUsable,
    LetterFacts,
    LetterNotAllowed,
    OutgoingLetter,
    RecipientParty,
    ResponseWindow,
    compose,
    format_date,
    format_pence,
    prepare_letter,
    response_window,
)
from csa_closure.letters.config import (
    CONFIG_ENV,
    LettersConfig,
    LettersConfigError,
    TemplateConfig,
    load_letters_config,
    parse_letters_config,
)
from csa_closure.letters.due import letters_due
from csa_closure.letters.fields import LetterField
from csa_closure.letters.kinds import (
    ALLOWED_LETTERS,
    LetterKind,
    LetterPurpose,
    Recipient,
    letter_kind,
)
from csa_closure.letters.references import is_reference, new_reference, new_references

__all__ = [
    "ALLOWED_LETTERS",
    "CONFIG_ENV",
    "AddressNotUsable",
    "AddressProblem",
    "AddressProblemCode",
    "LetterFacts",
    "LetterField",
    "LetterKind",
    "LetterNotAllowed",
    "LetterPurpose",
    "LettersConfig",
    "LettersConfigError",
    "OutgoingLetter",
    "Recipient",
    "RecipientParty",
    "ResponseWindow",
    "TemplateConfig",
    "address_frame",
    "address_lines",
    "address_problems",
    "check_address",
    "check_lines",
    "compose",
    "format_date",
    "format_pence",
    "format_postcode",
    "is_reference",
    "letter_kind",
    "letters_due",
    "load_letters_config",
    "new_reference",
    "new_references",
    "parse_letters_config",
    "prepare_letter",
    "response_window",
]
