"""People stay in the database; workflows carry references to them.

Temporal keeps every workflow's history (inputs, results, signals, updates)
for as long as the history lives, and the purge of a program cannot reach it.
So nothing that names a person goes there. Workflows address people by
*reference*: an address-shaped token (so the definition's types stay valid)
that the email and record activities turn back into the real person, read
from the database, when they run.

- ``applicant.<application id>@…`` and ``manager.<application id>@…``: the
  applicant of an application and their (current) manager.
- ``person.<n>@…``: the n-th distinct address of the program's definition
  (contacts, organisations' HR contacts, announcement recipients, in that
  order, case folded), so the same person keeps one reference wherever they
  appear and ``coordinators()`` still sees them once.

HR's free text (the reason for a move, a purge or a withdrawal) is saved as a
*note* in the database and travels as the note's key (``note-…``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from mentorflow.definition import Contact, ProgramDefinition, stored_definition
from mentorflow.store import Store
from mentorflow.store.tables import Application

DOMAIN = "people.mentorflow.example"
NOTE_PREFIX = "note-"

Kind = Literal["applicant", "manager", "person"]


@dataclass(frozen=True)
class Reference:
    kind: Kind
    key: str  # the application id, or the person's number in the definition


def applicant(application_id: str) -> str:
    """The reference to the applicant of ``application_id``."""
    return f"applicant.{application_id}@{DOMAIN}"


def manager(application_id: str) -> str:
    """The reference to the manager named (last) in ``application_id``."""
    return f"manager.{application_id}@{DOMAIN}"


def parse(address: str) -> Reference | None:
    """The reference an address stands for; None for a real address."""
    local, _, domain = address.partition("@")
    kind, _, key = local.partition(".")
    if domain.lower() != DOMAIN or kind not in ("applicant", "manager", "person") or not key:
        return None
    return Reference(kind, key)  # type: ignore[arg-type]


def _addresses(definition: ProgramDefinition) -> Iterator[str]:
    for contact in definition.contacts:
        yield str(contact.email)
    for organisation in definition.organisations:
        for contact in organisation.hr_contacts:
            yield str(contact.email)
    yield from (str(r) for r in definition.announcement.recipients)


def _numbering(definition: ProgramDefinition) -> dict[str, str]:
    """Real address (case folded) -> its reference, in a stable order."""
    numbers: dict[str, str] = {}
    for address in _addresses(definition):
        numbers.setdefault(address.lower(), f"person.{len(numbers)}@{DOMAIN}")
    return numbers


def reference_of(definition: ProgramDefinition, address: str) -> str:
    """The reference the program's workflow knows a person of its definition by."""
    return _numbering(definition)[address.lower()]


def may_be_carried(value: str) -> bool:
    """Whether a workflow may carry ``value`` as who acted or why: nothing, a note's key,
    a reference, or a channel word (``cli``, ``hr``). The workflows' validators refuse
    anything else, so a client that sends a name or free text is told at once."""
    return (
        not value
        or re.fullmatch(rf"{NOTE_PREFIX}[0-9a-f]{{16}}", value) is not None
        or parse(value) is not None
        or re.fullmatch(r"[a-z_]{1,20}", value) is not None
    )


def without_people(definition: ProgramDefinition) -> ProgramDefinition:
    """The definition as the program's workflow gets it: every person a reference.

    Names become the reference too and phone numbers go; roles, titles and
    organisations stay (they describe the program, not a person).
    """
    numbers = _numbering(definition)

    def hide(contact: Contact) -> Contact:
        reference = numbers[str(contact.email).lower()]
        return contact.model_copy(
            update={"name": reference.partition("@")[0], "email": reference, "phone": None}
        )

    return definition.model_copy(
        update={
            "contacts": [hide(c) for c in definition.contacts],
            "organisations": [
                o.model_copy(update={"hr_contacts": [hide(c) for c in o.hr_contacts]})
                for o in definition.organisations
            ],
            "announcement": definition.announcement.model_copy(
                update={
                    "recipients": [
                        numbers[str(r).lower()] for r in definition.announcement.recipients
                    ]
                }
            ),
        }
    )


def directory(definition: ProgramDefinition) -> dict[str, Contact]:
    """Reference -> the person it stands for (recipients without a name get their address)."""
    found: dict[str, Contact] = {}
    numbers = _numbering(definition)
    for contact in [
        *definition.contacts,
        *(c for o in definition.organisations for c in o.hr_contacts),
    ]:
        found.setdefault(numbers[str(contact.email).lower()], contact)
    for recipient in definition.announcement.recipients:
        reference = numbers[str(recipient).lower()]
        found.setdefault(reference, Contact(name=str(recipient), email=recipient))
    return found


class Unknown(LookupError):
    """A reference to nobody the database knows (the application was purged, say)."""


async def _definition(store: Store, program_id: str) -> ProgramDefinition | None:
    row = await store.program(program_id)
    try:
        return stored_definition(row.definition) if row else None
    except ValidationError:  # none saved (a run registered by itself): nobody to look up
        return None


class Resolver:
    """The real people behind one program's references, read from the database.

    Made per activity run: it holds the program's stored definition and the
    application rows it has read.
    """

    def __init__(self, store: Store, program_id: str, definition: ProgramDefinition | None):
        self._store = store
        self._program_id = program_id
        self._directory: dict[str, Contact] | None = (
            directory(definition) if definition is not None else {}
        )
        self._applications: dict[str, Application | None] = {}

    @classmethod
    async def load(cls, store: Store, program_id: str) -> Resolver:
        return cls(store, program_id, await _definition(store, program_id))

    @classmethod
    def of_application(cls, store: Store, row: Application) -> Resolver:
        """A resolver that knows ``row`` already and reads the definition only if a
        reference needs it (an application's own people do not)."""
        resolver = cls(store, row.program_id, None)
        resolver._directory = None
        resolver._applications[row.id] = row
        return resolver

    async def application(self, application_id: str) -> Application | None:
        if application_id not in self._applications:
            self._applications[application_id] = await self._store.application(application_id)
        return self._applications[application_id]

    async def person(self, address: str) -> Contact:
        """Who ``address`` is: a real address is itself (runs from before the references)."""
        reference = parse(address)
        if reference is None:  # unchecked: the email activity refuses a bad one politely
            return Contact.model_construct(name=address, email=address)
        if reference.kind == "person":
            if self._directory is None:
                definition = await _definition(self._store, self._program_id)
                self._directory = directory(definition) if definition is not None else {}
            if address not in self._directory:
                raise Unknown(f"{address} is not in program {self._program_id}'s definition")
            return self._directory[address]
        row = await self.application(reference.key)
        if row is None:
            raise Unknown(f"no application {reference.key} in program {self._program_id}")
        if reference.kind == "applicant":
            return Contact(name=row.name, email=row.email)
        return Contact(name=row.manager_name, email=row.manager_email)

    async def email(self, address: str) -> str:
        return str((await self.person(address)).email)

    def contacts(self, contacts: list[Contact]) -> list[Contact]:
        """The definition's contacts (as references) as the people they are (a resolver
        made by ``load``, which read the definition)."""
        assert self._directory is not None, "contacts() needs the definition: Resolver.load"
        return [self._directory.get(str(c.email), c) for c in contacts]

    async def text(self, value: str) -> str:
        """A note's text for its key; any other value as it is."""
        if not value.startswith(NOTE_PREFIX):
            return value
        return (await self._store.note(self._program_id, value)).get("text", "")

    async def who(self, value: str) -> str:
        """For the database's records: who a reference or a note names; anything else as is."""
        if value.startswith(NOTE_PREFIX):
            return (await self._store.note(self._program_id, value)).get("by", "")
        try:
            return await self.email(value) if parse(value) is not None else value
        except Unknown:
            return value
