"""Red team: an Authing webhook answered 200 must be applied or recorded as refused,
never settled unapplied (README "nothing lost"; issue 10 §1 "JSON and form-encoded
bodies"). The Authing simulator can encode a form delivery the qs way
(``data[user][id]=…``, ``webhook_form_style="qs"``): the receiver stores such a delivery as
user ``unknown`` and settles it ``done``; the user never reaches WeCom."""

from __future__ import annotations

from ..conftest import CallbackKeys
from ..e2e_stack import HOOK_SECRET, running_stack
from ..test_downstream_e2e import root, wecom_user


def test_a_qs_style_form_webhook_reaches_wecom(sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        for hook in s.authing.webhooks.hooks.values():
            hook.enabled = False  # replaced by a form-encoded webhook
        s.authing.webhooks.form_style = "qs"
        s.authing.admin.add_webhook(f"{s.url}/authing/webhook", HOOK_SECRET,
                                    content_type="application/x-www-form-urlencoded")
        a = s.authing.admin
        user = a.create_user(username="form", name="表单", email="form@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        s.settle()
        assert not [e for e in s.events() if e["entity_key"] == "unknown"], s.events()
        assert wecom_user(s, "form") is not None
