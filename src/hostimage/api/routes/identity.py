"""Identity administration: ``/domains``, ``/projects``, ``/users``, ``/role-assignments``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from hostimage.api.deps import CtxDep, SessionDep
from hostimage.api.schemas.identity import (
    AssignmentIn,
    AssignmentOut,
    DomainIn,
    DomainOut,
    Items,
    ProjectIn,
    ProjectOut,
    UserIn,
    UserOut,
)
from hostimage.services import identity

router = APIRouter(tags=["identity"])


@router.get("/domains", response_model=Items[DomainOut])
def list_domains(session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    return {"items": identity.list_domains(session, ctx)}


@router.post("/domains", response_model=DomainOut, status_code=201)
def create_domain(body: DomainIn, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    return identity.create_domain(session, ctx, body.name, body.description)


@router.get("/projects", response_model=Items[ProjectOut])
def list_projects(session: SessionDep, ctx: CtxDep, domain_id: str | None = None) -> dict[str, Any]:
    return {"items": identity.list_projects(session, ctx, domain_id)}


@router.post("/projects", response_model=ProjectOut, status_code=201)
def create_project(body: ProjectIn, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    return identity.create_project(session, ctx, body.name, body.domain_id, body.description)


@router.get("/users", response_model=Items[UserOut])
def list_users(session: SessionDep, ctx: CtxDep, domain_id: str | None = None) -> dict[str, Any]:
    return {"items": identity.list_users(session, ctx, domain_id)}


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(body: UserIn, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    return identity.create_user(
        session, ctx, body.name, body.domain_id, body.password, body.display_name, body.email
    )


@router.get("/role-assignments", response_model=Items[AssignmentOut])
def list_assignments(
    session: SessionDep, ctx: CtxDep, user_id: str | None = None
) -> dict[str, Any]:
    return {"items": identity.list_assignments(session, ctx, user_id)}


@router.post("/role-assignments", response_model=AssignmentOut, status_code=201)
def assign(body: AssignmentIn, session: SessionDep, ctx: CtxDep) -> dict[str, Any]:
    return identity.assign_role(
        session, ctx, body.user_id, body.role, body.scope, body.domain_id, body.project_id
    )


@router.delete("/role-assignments/{assignment_id}", status_code=204)
def unassign(assignment_id: str, session: SessionDep, ctx: CtxDep) -> Response:
    identity.remove_assignment(session, ctx, assignment_id)
    return Response(status_code=204)
