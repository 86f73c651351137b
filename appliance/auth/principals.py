"""Building the Principal of a signed-in user: role, home facility and every facility it may act on."""

from typing import Any

from appliance.db.database import Database
from appliance.web.policy import AuthVia, Principal, Role

ROLE_RANK = {Role.LEARNER: 0, Role.FACILITY_ADMIN: 1, Role.DEPARTMENT_ADMIN: 2, Role.SYSTEM_ADMIN: 3}


async def facility_ids_of(db: Database, user_id: int, role: Role, home: int) -> frozenset[int]:
    """The home facility, plus user_facilities for department admins (others are confined to home)."""
    if role is not Role.DEPARTMENT_ADMIN:
        return frozenset({home})
    rows = await db.fetchall("SELECT facility_id FROM user_facilities WHERE user_id = ?", (user_id,))
    return frozenset({home, *(r["facility_id"] for r in rows)})


async def build_principal(
    db: Database, user: dict[str, Any], via: AuthVia, session_id: int | None, *, role_cap: Role | None = None
) -> Principal:
    """A Principal from a users row; role_cap lowers the role (API tokens scoped below their owner)."""
    role = Role(user["role"])
    if role_cap is not None and ROLE_RANK[role_cap] < ROLE_RANK[role]:
        role = role_cap
    return Principal(
        user_id=user["id"],
        uuid=user["uuid"],
        username=user["username"],
        role=role,
        facility_id=user["facility_id"],
        facility_ids=await facility_ids_of(db, user["id"], role, user["facility_id"]),
        via=via,
        session_id=str(session_id) if session_id is not None else None,
        must_change_password=bool(user.get("must_change_password", 0)),
    )


def outranks(actor: Role, granted: Role) -> bool:
    """May an actor with this role grant that role? System admins grant any; others only lower ones."""
    return actor is Role.SYSTEM_ADMIN or ROLE_RANK[granted] < ROLE_RANK[actor]
