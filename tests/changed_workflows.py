"""Two changed versions of ProgramWorkflowV1 (whose histories are recorded), for
``test_replay``: one unsafe, one patched.

In their own module because the workflow sandbox re-imports the module that
defines a workflow, and test modules import half the world.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mentorflow.models import ProgramResult
    from workflows.legacy.program_v1 import ProgramWorkflowV1
    from workflows.legacy.state_v1 import ProgramInputV1 as ProgramInput


@workflow.defn(name="ProgramWorkflow")
class UnsafeChange(ProgramWorkflowV1):
    """A new step before the program begins, added without a patch."""

    @workflow.run
    async def run(self, input: ProgramInput) -> ProgramResult:
        await workflow.sleep(1)
        return await super().run(input)


@workflow.defn(name="ProgramWorkflow")
class PatchedChange(ProgramWorkflowV1):
    """The same step behind ``workflow.patched``: new programs take it, running ones do not."""

    @workflow.run
    async def run(self, input: ProgramInput) -> ProgramResult:
        if workflow.patched("settle-before-start"):
            await workflow.sleep(1)
        return await super().run(input)
