from perfwatch.domain.drift import JS_FLOOR, KS_FLOOR, RawDrift, confirmed, notable


def js(value: float, alert: bool = True) -> RawDrift:
    return RawDrift("jensen_shannon", value, alert)


def test_a_small_distance_is_not_notable_even_when_nannyml_alerts() -> None:
    assert not notable(js(JS_FLOOR / 2))
    assert notable(js(JS_FLOOR))
    assert not notable(js(0.9, alert=False))
    assert notable(RawDrift("reconstruction_error", 1.2, True))


def test_drift_is_confirmed_over_consecutive_notable_chunks() -> None:
    chain = [js(0.3), js(0.05), js(0.3), js(0.4), js(0.5), js(0.02)]
    assert confirmed(chain) == [False, False, False, True, True, False]
    assert confirmed(chain, over=1) == [True, False, True, True, True, False]


def test_a_test_alerts_on_its_corrected_p_value_and_ks_also_on_a_floor() -> None:
    assert not notable(RawDrift("ks", KS_FLOOR / 2, alert=True)), "certain, but too small"
    assert notable(RawDrift("ks", KS_FLOOR, alert=True))
    assert not notable(RawDrift("ks", 0.5, alert=False)), "the p-value did not alert"
    for method in ("chi2", "wasserstein", "classifier", "mmd"):
        assert notable(RawDrift(method, 0.001, alert=True)), method
        assert not notable(RawDrift(method, 10.0, alert=False)), method
