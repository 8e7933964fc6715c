"""trainables.core.registry: lookups, error messages, duplicate registration."""

from __future__ import annotations

import pytest

from trainables.core.registry import Registry, UnknownNameError


@pytest.fixture
def reg() -> Registry[int]:
    r: Registry[int] = Registry("widget")
    r.register("alpha", 1)
    r.register("beta", 2)
    r.register("gamma", 3)
    return r


def test_get_and_order(reg):
    assert reg.get("beta") == 2
    assert reg.names() == ["alpha", "beta", "gamma"]
    assert list(reg.items()) == [("alpha", 1), ("beta", 2), ("gamma", 3)]
    assert len(reg) == 3
    assert "alpha" in reg and "delta" not in reg


def test_decorator_form_returns_the_object():
    r: Registry[type] = Registry("thing")

    @r.register("k")
    class K:
        pass

    assert r.get("k") is K
    assert K.__name__ == "K"  # the decorator hands the class back unchanged


def test_unknown_name_lists_accepted_and_suggests_close_match(reg):
    with pytest.raises(UnknownNameError) as info:
        reg.get("alpah")
    err = info.value
    message = str(err)
    assert message.startswith("unknown widget 'alpah'")
    assert "did you mean 'alpha'?" in message
    assert message.endswith("accepted: alpha, beta, gamma")
    assert err.kind == "widget" and err.name == "alpah" and err.accepted == ["alpha", "beta", "gamma"]
    # a KeyError, but str() is not wrapped in KeyError's quotes
    assert isinstance(err, KeyError)
    assert not message.startswith('"')


def test_unknown_name_without_close_match_has_no_hint(reg):
    with pytest.raises(UnknownNameError) as info:
        reg.get("zzzzzz")
    assert "did you mean" not in str(info.value)
    assert "accepted: alpha, beta, gamma" in str(info.value)


def test_unhashable_name_is_an_unknown_name_error(reg):
    with pytest.raises(UnknownNameError) as info:
        reg.get(["alpha"])  # type: ignore[arg-type]
    assert "unknown widget ['alpha']" in str(info.value)


def test_duplicate_registration_errors_and_keeps_the_first(reg):
    with pytest.raises(ValueError, match=r"widget 'alpha' is already registered"):
        reg.register("alpha", 99)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("beta")(42)
    assert reg.get("alpha") == 1 and reg.get("beta") == 2
    assert len(reg) == 3
