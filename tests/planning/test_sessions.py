"""Staged sessions: units split by lesion count, frozen volume and frozen share of the liver, with flags."""

import numpy as np
import pytest

from cryoplan.errors import InputError
from cryoplan.planning.search import Candidate, ProbePlan
from cryoplan.planning.sessions import SessionLimits, UnitLoad, shared_ice_is_better, staged_sessions


def loads(*frozen_ml, liver_share=0.8):
    return [UnitLoad(f"U{n}", [f"L{n}"], ml, liver_share * ml) for n, ml in enumerate(frozen_ml, start=1)]


def test_few_small_lesions_take_one_session():
    (session,) = staged_sessions(loads(40.0, 30.0, 20.0), healthy_liver_ml=1500.0)
    assert session.unit_ids == ["U1", "U2", "U3"]
    assert session.frozen_volume_ml == pytest.approx(90.0)
    assert session.frozen_liver_fraction == pytest.approx(0.8 * 90.0 / 1500.0)
    assert session.risks == []


def test_more_lesions_than_a_session_treats_are_staged():
    sessions = staged_sessions(loads(*[10.0] * 7), healthy_liver_ml=1500.0)
    assert [len(s.lesion_ids) for s in sessions] == [3, 3, 1]
    assert sorted(i for s in sessions for i in s.lesion_ids) == sorted(f"L{n}" for n in range(1, 8))


def test_frozen_liver_fraction_splits_sessions_and_the_limits_hold():
    # 880 ml of liver, 30 % is 264 ml: 273 ml of frozen liver cannot be one session.
    units = loads(120.0, 100.0, 80.0, 41.25, liver_share=0.8)
    sessions = staged_sessions(units, healthy_liver_ml=880.0)
    assert len(sessions) == 2
    for session in sessions:
        assert session.frozen_liver_fraction <= 0.30
        assert session.risks == []
    assert sum(s.frozen_liver_ml for s in sessions) == pytest.approx(0.8 * 341.25)


def test_a_unit_over_the_limits_alone_is_flagged():
    (big, small) = staged_sessions(loads(600.0, 20.0), healthy_liver_ml=1200.0)
    assert big.unit_ids == ["U1"] and small.unit_ids == ["U2"]
    assert {r.code for r in big.risks} == {"cryoshock", "frozen_liver_fraction"}
    assert small.risks == []
    assert big.to_dict()["risks"][0]["code"] in {"cryoshock", "frozen_liver_fraction"}


def test_without_a_liver_only_count_and_volume_decide():
    sessions = staged_sessions(loads(300.0, 300.0), healthy_liver_ml=None)
    assert len(sessions) == 2 and all(s.frozen_liver_fraction is None for s in sessions)


def test_bad_limits():
    with pytest.raises(InputError, match="max_lesions_per_session"):
        staged_sessions(loads(1.0), 100.0, SessionLimits(max_lesions=0))
    with pytest.raises(InputError, match="max_frozen_liver_fraction"):
        staged_sessions(loads(1.0), 100.0, SessionLimits(max_frozen_liver_fraction=1.5))


def candidate(probes, frozen_ml, critical_ok=True):
    plan = ProbePlan("17g-rod", np.zeros(3), np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, -100.0]))
    return Candidate([plan] * probes, 10.0, None, 100.0, frozen_ml, critical_ok)


def test_one_ice_ball_only_when_cheaper_and_safer():
    separate = [candidate(1, 20.0), candidate(1, 25.0)]
    assert shared_ice_is_better(candidate(2, 40.0), separate)
    assert not shared_ice_is_better(candidate(3, 30.0), separate)  # more probes
    assert not shared_ice_is_better(candidate(2, 50.0), separate)  # more healthy liver frozen
    assert not shared_ice_is_better(candidate(2, 40.0, critical_ok=False), separate)  # reaches a duct
    assert not shared_ice_is_better(None, separate)
    assert shared_ice_is_better(candidate(4, 90.0), [candidate(1, 20.0), None])  # alone one has no plan
