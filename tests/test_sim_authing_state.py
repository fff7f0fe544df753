"""Property: whatever sequence of user writes the pool accepts or refuses, its unique-key
indexes describe exactly the users it holds (no stale or missing entries)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.authing.errors import ApiError
from simulators.authing.state import PoolState
from simulators.authing.users import UNIQUE_USER_KEYS, norm

values = st.sampled_from(["a", "b", "c", None])
fields = st.fixed_dictionaries({}, optional={
    "username": values, "externalId": values,
    "email": st.sampled_from(["a@x.com", "A@x.com", "b@x.com", None]),
    "phone": st.sampled_from(["13800000001", "13800000002", None]),
})
ops = st.lists(st.tuples(st.sampled_from(["create", "update", "delete", "resign"]),
                         st.integers(0, 5), fields), max_size=30)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_indexes_match_users_after_any_sequence(sequence: list[tuple[str, int, Any]]) -> None:
    state = PoolState("pool")
    state.create_organization({"organizationCode": "o", "organizationName": "O"})
    for op, pick, body in sequence:
        users = list(state.users.values())
        target = users[pick % len(users)] if users else None
        try:
            if op == "create":
                state.create_users([{k: v for k, v in body.items() if v is not None}])
            elif target is None:
                continue
            elif op == "update":
                state.update_users([(target, body)])
            elif op == "delete":
                state.delete_users([target])
            else:
                state.resign_users([target])
        except ApiError as exc:
            assert exc.status == 400
    for key in UNIQUE_USER_KEYS:
        expected = {norm(key, u.profile[key]): u.user_id for u in state.users.values()
                    if u.profile.get(key) is not None}
        assert state.index[key] == expected
    for user in state.users.values():
        assert any(user.profile.get(k) for k in ("username", "phone", "email"))
