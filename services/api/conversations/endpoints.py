"""GET /v1/conversations/{conversation_id}."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from sqlalchemy import select

from services.api.conversations.present import present_state
from services.api.conversations.schemas import ConversationResponse
from services.api.deps import Conn, State, Tenant
from services.api.errors import AUTH_RESPONSES, ApiError, problem_response
from shared.db.schema import conversations

router = APIRouter(tags=["conversations"], responses=AUTH_RESPONSES)

_COLUMNS = (
    "is_call",
    "status",
    "channel",
    "team",
    "agent",
    "created_at",
    "queued_at",
    "sla_due_at",
    "sla_breached_at",
    "sla_at_risk_at",
    "closed",
    "updated_at",
)


@router.get(
    "/v1/conversations/{conversation_id}",
    response_model=ConversationResponse,
    summary="One conversation or call, and why it counted as it did",
    responses={404: problem_response("No such conversation for this tenant.")},
)
async def get_conversation(
    state: State,
    tenant: Tenant,
    conn: Conn,
    conversation_id: Annotated[
        str, Path(description="The conversation (or call) id of the canonical events.")
    ],
) -> dict[str, Any]:
    c = conversations.c
    stmt = select(*(c[name] for name in _COLUMNS), c.state).where(
        c.tenant == tenant.name, c.conversation_id == conversation_id
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise ApiError(
            404, f"no conversation {conversation_id!r} in tenant {tenant.name!r}", reason="not-found"
        )
    out: dict[str, Any] = {"tenant": tenant.name, "conversation_id": conversation_id}
    out.update(zip(_COLUMNS, row[: len(_COLUMNS)], strict=True))
    out.update(present_state(row.state, state.clock()))
    return out
