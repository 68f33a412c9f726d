"""mentorflow.people: the workflows' references, and the people the activities find behind them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mentorflow import people
from mentorflow.definition import load_definition
from mentorflow.store import Store
from tests.programs import DEMO, record_program

# The database matters here: these run on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.database


def test_the_definition_without_people_names_nobody_and_keeps_one_reference_per_person() -> None:
    definition = load_definition(DEMO)
    plan = people.without_people(definition)
    addresses = {str(c.email) for c in definition.coordinators()} | {
        str(r) for r in definition.announcement.recipients
    }
    dumped = plan.model_dump_json()
    assert addresses and not any(address in dumped for address in addresses)
    assert not any(c.name in dumped for c in definition.contacts if c.name)
    # One person, one reference: the coordinators are still found once each.
    assert len(plan.coordinators()) == len(definition.coordinators())
    found = people.directory(definition)
    for contact in plan.coordinators():
        assert people.parse(str(contact.email)) is not None
        assert found[str(contact.email)].email in addresses
    for contact in definition.coordinators():
        assert people.reference_of(definition, str(contact.email).upper()) in found


@pytest.mark.parametrize(
    ("value", "carried"),
    [
        ("", True),
        ("cli", True),
        ("note-0123456789abcdef", True),
        (people.applicant("a1b2"), True),
        ("person.3@people.mentorflow.example", True),
        ("hr@demo.example.org", False),
        ("Göran är sjuk", False),
        ("note-not-a-key", False),
        ("person.3@people.example.org", False),
    ],
)
def test_only_references_note_keys_and_channel_words_may_be_carried(
    value: str, carried: bool
) -> None:
    assert people.may_be_carried(value) is carried


async def test_the_resolver_finds_applicants_managers_contacts_and_notes(store: Store) -> None:
    definition = load_definition(DEMO)
    await record_program(store, definition)
    at = datetime.now(UTC)
    saved, _ = await store.save_application(
        new_id="app-1",
        program_id=definition.id,
        email="Åsa@Example.org",
        name="Åsa Öberg",
        organisation_id=definition.organisations[0].id,
        department="",
        profile_id=definition.profiles[0].id,
        manager_email="chef@example.org",
        manager_name="Chef Chefsson",
        answers={},
        eligibility_confirmed=True,
        channel="web",
        at=at,
    )
    note = await store.save_note(definition.id, "Sjuk vecka 12", "hr@example.org", at)
    resolver = await people.Resolver.load(store, definition.id)

    assert await resolver.email(people.applicant(saved.id)) == "åsa@example.org"
    manager = await resolver.person(people.manager(saved.id))
    assert (manager.name, manager.email) == ("Chef Chefsson", "chef@example.org")
    coordinator = definition.coordinators()[0]
    reference = people.reference_of(definition, str(coordinator.email))
    assert await resolver.email(reference) == coordinator.email
    assert await resolver.text(note) == "Sjuk vecka 12"
    assert await resolver.who(note) == "hr@example.org"
    assert await resolver.who(people.manager(saved.id)) == "chef@example.org"
    assert await resolver.text("plain words") == "plain words"
    with pytest.raises(people.Unknown):
        await resolver.person(people.applicant("nobody"))
    with pytest.raises(people.Unknown):
        await resolver.person("person.999@people.mentorflow.example")

    # The purge takes the note's words with the rest of the personal data.
    await store.purge_personal_data(definition.id, {}, at)
    assert await resolver.text(note) == ""
