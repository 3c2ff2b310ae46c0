"""Identity administration: ``/domains``, ``/projects``, ``/users``, ``/role-assignments``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from hostimage.api.deps import Run
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
async def list_domains(run: Run) -> dict[str, Any]:
    return {"items": await run(identity.list_domains)}


@router.post("/domains", response_model=DomainOut, status_code=201)
async def create_domain(body: DomainIn, run: Run) -> dict[str, Any]:
    return await run(identity.create_domain, body.name, body.description)


@router.get("/projects", response_model=Items[ProjectOut])
async def list_projects(run: Run, domain_id: str | None = None) -> dict[str, Any]:
    return {"items": await run(identity.list_projects, domain_id)}


@router.post("/projects", response_model=ProjectOut, status_code=201)
async def create_project(body: ProjectIn, run: Run) -> dict[str, Any]:
    return await run(identity.create_project, body.name, body.domain_id, body.description)


@router.get("/users", response_model=Items[UserOut])
async def list_users(run: Run, domain_id: str | None = None) -> dict[str, Any]:
    return {"items": await run(identity.list_users, domain_id)}


@router.post("/users", response_model=UserOut, status_code=201)
async def create_user(body: UserIn, run: Run) -> dict[str, Any]:
    return await run(
        identity.create_user,
        body.name,
        body.domain_id,
        body.password,
        body.display_name,
        body.email,
    )


@router.get("/role-assignments", response_model=Items[AssignmentOut])
async def list_assignments(run: Run, user_id: str | None = None) -> dict[str, Any]:
    return {"items": await run(identity.list_assignments, user_id)}


@router.post("/role-assignments", response_model=AssignmentOut, status_code=201)
async def assign(body: AssignmentIn, run: Run) -> dict[str, Any]:
    return await run(
        identity.assign_role, body.user_id, body.role, body.scope, body.domain_id, body.project_id
    )


@router.delete("/role-assignments/{assignment_id}", status_code=204)
async def unassign(assignment_id: str, run: Run) -> Response:
    await run(identity.remove_assignment, assignment_id)
    return Response(status_code=204)
