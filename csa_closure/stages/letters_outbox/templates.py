"""Before the first letter of a live batch: each template it uses, as Notify has it.

The sender fetches every template the batch's letters use (``get_template`` in the official
client) and refuses the batch, before any letter is sent, when:

- Notify has no such template for this service, or it is not a letter template;
- the template needs a placeholder the letters configuration does not send for it (Notify
  would refuse every letter: "Missing personalisation");
- the configuration sends a placeholder the template does not have (the letter would not say
  what the configuration means it to).

The address placeholders (``address_line_1`` .. ``address_line_7``, ``postcode``) are Notify's
own and never listed in a template. Names are compared as Notify compares them (case, spaces,
``_`` and ``-`` ignored). Messages name the letter, the template and the placeholders; they
hold no personal data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from csa_closure.channels.notify import TemplateInfo, fold_placeholder
from csa_closure.letters import LettersConfig
from csa_closure.letters.fields import RESERVED_PLACEHOLDERS
from csa_closure.letters.kinds import LetterKind

_RESERVED = {fold_placeholder(name) for name in RESERVED_PLACEHOLDERS}


def template_problem(
    kind: LetterKind, config: LettersConfig, found: TemplateInfo | None
) -> str | None:
    """Why the batch must not send ``kind``'s letters with the template Notify returned (None
    when they agree)."""
    template = config.template(kind)
    where = f"{kind.key} (template {template.template_id})"
    if found is None:
        return (
            f"{where}: Notify has no such template for this service; check the id in the"
            " letters configuration"
        )
    if found.template_type != "letter":
        return (
            f"{where}: Notify's template is of type {found.template_type or 'unknown'}, not"
            " letter; configure the letter template's id"
        )
    needed = [n for n in found.placeholders if fold_placeholder(n) not in _RESERVED]
    sent = list(template.placeholder_names)
    sent_folded = {fold_placeholder(n) for n in sent}
    needed_folded = {fold_placeholder(n) for n in needed}
    missing = [n for n in needed if fold_placeholder(n) not in sent_folded]
    unknown = [n for n in sent if fold_placeholder(n) not in needed_folded]
    if not missing and not unknown:
        return None
    parts = []
    if missing:
        parts.append(
            "the template needs placeholders the letters configuration does not send: "
            + ", ".join(missing)
        )
    if unknown:
        parts.append(
            "the letters configuration sends placeholders the template does not have: "
            + ", ".join(unknown)
        )
    return f"{where}: " + "; ".join(parts) + f" (Notify's template version {found.version})"


def check_templates(
    get_template: Callable[[str], TemplateInfo | None],
    kinds: Iterable[LetterKind],
    config: LettersConfig,
) -> list[str]:
    """Every problem with the templates of ``kinds`` (``get_template``: the channel's)."""
    problems = []
    fetched: dict[str, TemplateInfo | None] = {}
    for kind in sorted(set(kinds), key=lambda k: k.key):
        template_id = config.template(kind).template_id
        if template_id not in fetched:
            fetched[template_id] = get_template(template_id)
        problem = template_problem(kind, config, fetched[template_id])
        if problem is not None:
            problems.append(problem)
    return problems
