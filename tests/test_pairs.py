"""One pair's workflow over a long program: bounded history, state kept across runs.

The time-skipping Temporal server, the real SMTP server and the real database.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from mentorflow.definition import CadenceStep, Language, Meetings
from mentorflow.links import LinkSigner
from mentorflow.models import CheckInRequest, EmailFacts, PairInput, pair_workflow_id
from mentorflow.store import Store
from tests.conftest import Stack, run_histories
from tests.programs import record_pair
from workflows.pair import PairWorkflow

# Temporal warns at 10,240 events; a pair stays two orders of magnitude below it.
EVENT_BOUND = 250


async def pair_rows(store: Store, program_id: str, at: datetime) -> tuple[str, str, str]:
    """A program, a mentor and an adept in the database; (pair id, mentor id, adept id)."""
    await store.save_program(
        program_id=program_id,
        name="Två år",
        workflow_id=f"program-{program_id}",
        definition={"profiles": [], "organisations": []},
        phase="running",
        revision=0,
        next_deadline=None,
        at=at,
    )
    return await record_pair(store, program_id, at, source="matching", organisation_id="org")


async def test_a_weekly_pair_over_two_years_keeps_a_bounded_history(stack: Stack) -> None:
    env, mail_catcher = stack.env, stack.mail_catcher
    now = await env.get_current_time()
    program_id = f"two-years-{int(now.timestamp())}"
    pair_id, mentor_id, adept_id = await pair_rows(stack.store, program_id, now)
    start = now + timedelta(days=1)
    end = start + timedelta(days=730)
    pair = PairInput(
        program_id=program_id,
        pair_id=pair_id,
        mentor_id=mentor_id,
        adept_id=adept_id,
        start=start,
        end=end,
        meetings=Meetings(
            cadence=[CadenceStep(every=timedelta(days=7))],
            stalled_after=timedelta(weeks=6),
            midpoint_pulse=True,
        ),
        facts=EmailFacts(
            program_name="Två år",
            language=Language.SV,
            timezone="Europe/Stockholm",
            opens=now,
            deadline=now,
            start=start,
            end=end,
        ),
        hr=["hr@example.org"],
        check_ins_per_run=12,
    )
    async with stack.worker():
        handle = await env.client.start_workflow(
            PairWorkflow.run,
            pair,
            id=pair_workflow_id(program_id, pair_id),
            task_queue=stack.task_queue,
        )
        # The mentor answers the first check-in; the answer must survive every new run.
        await env.sleep(timedelta(days=9))
        fingerprint = LinkSigner(stack.worker_settings.secret_keys).fingerprint(
            "mentor@example.org"
        )
        await handle.execute_update(
            PairWorkflow.check_in, CheckInRequest(number="1", answer="yes", fingerprint=fingerprint)
        )
        final = await handle.result()
        lengths = [len(h.events) for h in await run_histories(env.client, handle.id)]

    weeks = (end - start).days // 7  # one check-in a week, the last one before the end
    assert final.status == "ended"
    assert final.check_ins_sent == weeks - (1 if start + timedelta(weeks=weeks) >= end else 0)
    assert final.answers == {"1": {"mentor": "yes"}}
    assert final.last_met is not None and final.runs == len(lengths)
    assert len(lengths) >= 8, lengths  # it continued as new every dozen check-ins ...
    assert max(lengths) < EVENT_BOUND, lengths  # ... so no run's history grew past the bound
    assert sum(lengths) > EVENT_BOUND  # (one run alone would have)
    sent = [m for m in mail_catcher.messages() if "mentor@example.org" in m.recipients]
    assert sum(m.subject.startswith("Har ni träffats") for m in sent) == final.check_ins_sent
    assert sum(m.subject.startswith("Halvvägs") for m in sent) == 1
    # Not met since the first check-in: flagged to HR once for that stretch, not every week.
    stalled = [m for m in mail_catcher.messages() if m.subject.startswith("Ett par i")]
    assert len(stalled) == 1
