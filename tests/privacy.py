"""Find personal data in what Temporal keeps: every history, memo, search attribute and summary.

The issue "Temporal holds no personal data" asks that, with payload encryption
off, nothing a person typed reaches Temporal. :func:`personal_data_in_temporal`
checks that from the outside: it lists every workflow of the client's namespace,
reads every run's history and description as raw protobuf, and walks each message
generically, so an event type or field that Temporal adds later is searched too
without a change here. Payloads are read as the bytes Temporal stores, never
through the client's data converter: an encrypted payload stays unreadable, as it
is to anyone who reads the histories.
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.query.v1 import WorkflowQuery
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    ListClosedWorkflowExecutionsRequest,
    ListOpenWorkflowExecutionsRequest,
    QueryWorkflowRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

# Not history events, but searched all the same; they take these names in a Hit.
DESCRIBED = "(describe)"
CURRENT_DETAILS = "(current details)"
# The query every Python SDK worker answers with the workflow's current details.
_METADATA_QUERY = "__temporal_workflow_metadata"
_PARALLEL = 8
# (event type, subject, field): one line of the summary.
_Line = tuple[str, str, str]


@dataclass(frozen=True)
class Hit:
    """A needle found in something Temporal keeps.

    ``where`` is the protobuf path inside the event (or the description), then,
    for a JSON payload, the JSON path inside it:
    ``activity_task_scheduled.input[0] $.facts.partner_name``. ``subject`` names
    the activity, child workflow, signal or update the event belongs to, so hits
    can be traced to the code that put the data there.
    """

    workflow_type: str
    workflow_id: str
    run_id: str
    event_id: int  # 0 for the description and the current details
    event_type: str  # "ActivityTaskScheduled", or DESCRIBED, CURRENT_DETAILS
    subject: str
    where: str
    needle: str


@dataclass(frozen=True)
class _Run:
    workflow_id: str
    run_id: str
    workflow_type: str


async def personal_data_in_temporal(
    client: Client,
    needles: Iterable[str],
    *,
    current_details: bool = True,
    query: str | None = None,
) -> list[Hit]:
    """Every place in the client's namespace where one of ``needles`` occurs (case-insensitive).

    ``current_details``: also ask each workflow for its current details, a query a
    worker must answer; a run no worker answers for is skipped, not counted clean
    or dirty. Run this while the workers are still up to have them searched.
    ``query`` (a visibility query; not on the time-skipping server) narrows the
    search to some workflows, e.g. one program's on a dev server shared by tests.
    """
    matcher = _Matcher(needles)
    runs = await every_run(client, query)
    limit = asyncio.Semaphore(_PARALLEL)

    async def search(run: _Run) -> list[Hit]:
        async with limit:
            found = await _search_history(client, run, matcher)
            found += await _search_description(client, run, matcher)
            if current_details:
                found += await _search_current_details(client, run, matcher)
            return found

    hits: list[Hit] = []
    for found in await asyncio.gather(*(search(run) for run in runs)):
        hits += found
    return hits


def grouped(hits: Iterable[Hit], kinds: Mapping[str, str] | None = None) -> str:
    """The hits as a guide for the refactor: by workflow type, then event and field.

    Indices inside a JSON payload are folded (``$.recipients[*]``), so one field
    is one line however many people it carried; ``kinds`` labels each needle
    (name, email, free text) so a line says what kind of data the field leaks,
    and how many distinct values of each kind it held, in how many runs.
    """
    kinds = kinds or {}
    needles: dict[str, dict[_Line, dict[str, set[str]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(set))
    )
    runs: dict[str, dict[_Line, set[str]]] = defaultdict(lambda: defaultdict(set))
    for hit in hits:
        proto, dollar, inside = hit.where.partition(" $")
        line = (hit.event_type, hit.subject, proto + dollar + re.sub(r"\[\d+\]", "[*]", inside))
        needles[hit.workflow_type][line][kinds.get(hit.needle, "needle")].add(hit.needle)
        runs[hit.workflow_type][line].add(hit.run_id)
    out = []
    for workflow_type in sorted(needles):
        out.append(f"{workflow_type}:")
        for line, by_kind in sorted(needles[workflow_type].items()):
            event_type, subject, field = line
            label = f"{event_type} [{subject}]" if subject else event_type
            what = "; ".join(
                f"{kind} x{len(found)} (e.g. {sorted(found)[0]!r})"
                for kind, found in sorted(by_kind.items())
            )
            out.append(f"  {label} {field}: {what}; in {len(runs[workflow_type][line])} run(s)")
    return "\n".join(out)


# --- What to search ---------------------------------------------------------------------------


class _Matcher:
    """Case- and normalisation-insensitive search for the needles in a text."""

    def __init__(self, needles: Iterable[str]) -> None:
        self._needles = {_normal(n): n for n in needles if n.strip()}

    def __call__(self, text: str) -> list[str]:
        text = _normal(text)
        return [needle for normal, needle in self._needles.items() if normal in text]


def _normal(text: str) -> str:
    # "Å" typed in a form may arrive composed or decomposed; either is the same person.
    return unicodedata.normalize("NFC", text).casefold()


# --- Listing ----------------------------------------------------------------------------------


async def every_run(client: Client, query: str | None = None) -> list[_Run]:
    """Every run of every workflow of the namespace (or of ``query``), open and closed,
    continued-as-new too."""
    try:
        runs = [
            _Run(w.id, w.run_id, w.workflow_type)
            async for w in client.list_workflows(query, page_size=1000)
        ]
    except RPCError as error:
        if error.status is not RPCStatusCode.UNIMPLEMENTED:
            raise
        # The time-skipping test server has no visibility queries, only the older lists.
        runs = await _listed_the_old_way(client)
    return list(dict.fromkeys(runs))


async def _listed_the_old_way(client: Client) -> list[_Run]:
    service, namespace = client.workflow_service, client.namespace

    async def open_page(token: bytes) -> tuple[list[WorkflowExecutionInfo], bytes]:
        page = await service.list_open_workflow_executions(
            ListOpenWorkflowExecutionsRequest(
                namespace=namespace, maximum_page_size=1000, next_page_token=token
            )
        )
        return list(page.executions), page.next_page_token

    async def closed_page(token: bytes) -> tuple[list[WorkflowExecutionInfo], bytes]:
        page = await service.list_closed_workflow_executions(
            ListClosedWorkflowExecutionsRequest(
                namespace=namespace, maximum_page_size=1000, next_page_token=token
            )
        )
        return list(page.executions), page.next_page_token

    runs: list[_Run] = []
    for listing in (open_page, closed_page):
        token = b""
        while True:
            executions, token = await listing(token)
            runs += [
                _Run(info.execution.workflow_id, info.execution.run_id, info.type.name)
                for info in executions
            ]
            if not token:
                break
    return runs


# --- Searching --------------------------------------------------------------------------------


async def _search_history(client: Client, run: _Run, matcher: _Matcher) -> list[Hit]:
    handle = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
    history = await handle.fetch_history()
    names: dict[int, str] = {}
    update_names: dict[str, str] = {}
    hits: list[Hit] = []
    for event in history.events:
        subject = _subject(event, names, update_names)
        if subject:
            names[event.event_id] = subject
        event_type = _camel(EventType.Name(event.event_type).removeprefix("EVENT_TYPE_"))
        _walk(event, "", matcher, _collector(hits, run, event_type, event.event_id, subject))
    return hits


async def _search_description(client: Client, run: _Run, matcher: _Matcher) -> list[Hit]:
    """Memo, search attributes, static summary and details, pending activities' details."""
    # Raw, not handle.describe(): the time-skipping server keeps an unset Datetime search
    # attribute as null, which the SDK's decoding refuses.
    described = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=run.workflow_id, run_id=run.run_id),
        )
    )
    hits: list[Hit] = []
    _walk(described, "", matcher, _collector(hits, run, DESCRIBED))
    return hits


async def _search_current_details(client: Client, run: _Run, matcher: _Matcher) -> list[Hit]:
    try:
        answer = await client.workflow_service.query_workflow(
            QueryWorkflowRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(workflow_id=run.workflow_id, run_id=run.run_id),
                query=WorkflowQuery(query_type=_METADATA_QUERY),
            ),
            timeout=timedelta(seconds=10),
        )
    except RPCError:
        return []  # no worker for it (or one that does not know the query): nothing to read
    hits: list[Hit] = []
    _walk(answer, "", matcher, _collector(hits, run, CURRENT_DETAILS))
    return hits


def _collector(
    hits: list[Hit], run: _Run, event_type: str, event_id: int = 0, subject: str = ""
) -> Callable[[str, str], None]:
    def hit(where: str, needle: str) -> None:
        hits.append(
            Hit(
                run.workflow_type,
                run.workflow_id,
                run.run_id,
                event_id,
                event_type,
                subject,
                where,
                needle,
            )
        )

    return hit


def _subject(event: HistoryEvent, names: dict[int, str], update_names: dict[str, str]) -> str:
    """The activity, workflow, signal or update an event is about, from its fields or from
    the earlier event it refers to; found by field name, so new event types get it too."""
    oneof = event.WhichOneof("attributes")
    if oneof is None:
        return ""
    attributes = getattr(event, oneof)
    fields = {field.name: value for field, value in attributes.ListFields()}
    for name in ("activity_type", "workflow_type"):
        if name in fields:
            return str(fields[name].name)
    if "signal_name" in fields:
        return str(fields["signal_name"])
    for name in ("accepted_request", "request"):
        request = fields.get(name)
        if request is not None and hasattr(request, "input") and hasattr(request, "meta"):
            update_names[request.meta.update_id] = request.input.name
            return str(request.input.name)
    if "meta" in fields and fields["meta"].update_id in update_names:
        return update_names[fields["meta"].update_id]
    for reference in ("scheduled_event_id", "initiated_event_id"):
        if reference in fields and fields[reference] in names:
            return names[fields[reference]]
    return ""


def _camel(upper: str) -> str:
    return "".join(part.capitalize() for part in upper.split("_"))


# --- Walking any message -----------------------------------------------------------------------

_Found = Callable[[str, str], None]


def _walk(message: Message, path: str, matcher: _Matcher, found: _Found) -> None:
    """Every string, bytes and payload inside ``message``, whatever its type."""
    if isinstance(message, Payload):
        _payload(message, path, matcher, found)
        return
    for field, value in message.ListFields():
        name = field.name.removesuffix("_event_attributes")
        # Payloads.payloads[i] reads better as the argument list it is: input[i].
        here = path if isinstance(message, Payloads) else _join(path, name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key, item in value.items():
                _scalar(key, f"{here}[{key!r}]", matcher, found)
                _one(value_field, item, f"{here}[{key!r}]", matcher, found)
        elif field.is_repeated:
            for index, item in enumerate(value):
                _one(field, item, f"{here}[{index}]", matcher, found)
        else:
            _one(field, value, here, matcher, found)


def _one(field: FieldDescriptor, value: Any, path: str, matcher: _Matcher, found: _Found) -> None:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        _walk(value, path, matcher, found)
    else:
        _scalar(value, path, matcher, found)


def _scalar(value: object, path: str, matcher: _Matcher, found: _Found) -> None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        for needle in matcher(value):
            found(path, needle)


def _payload(payload: Payload, path: str, matcher: _Matcher, found: _Found) -> None:
    """A payload's data as the JSON it is (so escaped letters match), else as text."""
    for key, value in payload.metadata.items():
        _scalar(value, f"{path}.metadata[{key!r}]", matcher, found)
    text = payload.data.decode("utf-8", errors="replace")
    if not matcher(text) and "\\" not in text:
        return  # the common case, cheaply: nothing here, and no escape that could hide one
    try:
        data = json.loads(text)
    except ValueError:
        # Not JSON (binary/protobuf, or sealed): its strings are still plain UTF-8 inside.
        for needle in matcher(text):
            found(path, needle)
        return
    _json(data, f"{path} $", matcher, found)


def _json(data: object, path: str, matcher: _Matcher, found: _Found) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            # A key can be personal too (something kept by email address); written <key>,
            # so that the field is one line of the summary however many people it held.
            personal = matcher(str(key))
            here = f"{path}.<key>" if personal else f"{path}.{key}"
            for needle in personal:
                found(here, needle)
            _json(value, here, matcher, found)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            _json(value, f"{path}[{index}]", matcher, found)
    else:
        _scalar(data, path, matcher, found)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
