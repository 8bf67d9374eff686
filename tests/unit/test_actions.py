"""The standard verb set and the synonyms producers send for it."""

from __future__ import annotations

import pytest

from auditstream.schemas.actions import _SYNONYMS, Action, canonical_action


@pytest.mark.parametrize("action", list(Action))
def test_every_standard_verb_maps_to_itself(action: Action) -> None:
    assert canonical_action(action.value) is action
    assert canonical_action(action.value.upper()) is action


@pytest.mark.parametrize(
    ("verb", "expected"),
    [
        ("Deleted", Action.DELETE),
        ("remove", Action.DELETE),
        ("REMOVED", Action.DELETE),
        ("login", Action.SIGN_IN),
        ("log-in", Action.SIGN_IN),
        ("Log In", Action.SIGN_IN),
        ("log.in", Action.SIGN_IN),
        ("sign-in", Action.SIGN_IN),
        ("  logout  ", Action.SIGN_OUT),
        ("login-failed", Action.SIGN_IN_FAILED),
        ("status-change", Action.STATUS_CHANGE),
        ("download", Action.EXPORT),
        ("viewed", Action.ACCESS),
        ("grant", Action.PERMISSION_CHANGE),
        ("promoted", Action.ROLE_CHANGE),
        ("uninstall", Action.INTEGRATION_DISCONNECT),
        ("restored", Action.RESTORE),
    ],
)
def test_synonyms(verb: str, expected: Action) -> None:
    assert canonical_action(verb) is expected


@pytest.mark.parametrize("verb", ["", "   ", "frobnicate", "user.login", "delete!", "log in now"])
def test_unknown_verbs_give_none(verb: str) -> None:
    assert canonical_action(verb) is None


def test_synonym_table_keys_are_in_lookup_form_and_not_standard_verbs() -> None:
    standard = {a.value for a in Action}
    for key in _SYNONYMS:
        assert key == key.strip().lower().replace("-", "_").replace(" ", "_").replace(".", "_")
        assert key not in standard, f"{key!r} shadows a standard verb"
